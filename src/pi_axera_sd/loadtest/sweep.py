"""One ``pi-axera-sd loadtest`` run: warm-up, the concurrency sweep with its live progress line, and
the output files (JSON, markdown table, charts)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path

import httpx

from pi_axera_sd import exitcodes
from pi_axera_sd.errors import PiAxeraError
from pi_axera_sd.loadtest.dialects import calls
from pi_axera_sd.loadtest.driver import Plan, Progress, run_plan


class _ProgressLine:
    """One live line on stderr: redrawn in place on a terminal, a line every 5 s otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(p.statuses.items()))
        rate = p.images / p.elapsed_s if p.elapsed_s else 0.0
        text = (
            f"[{self.label}] {p.done} answers ({statuses or 'none yet'}) lost {p.lost} "
            f"{rate:.2f} img/s {p.elapsed_s:.0f}s"
        )
        if self.tty:
            print("\r" + text.ljust(100), end="", file=sys.stderr, flush=True)
        elif time.monotonic() - self._last >= 5.0:
            self._last = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def done(self, summary: dict) -> None:
        end = "\n" if self.tty else ""
        print(
            f"{end}[{self.label}] done: {summary['requests']} answers {summary['status']} lost "
            f"{summary['lost']}, {summary['images_per_s']} img/s, p95 {summary['latency_ms']['p95']} ms",
            file=sys.stderr,
            flush=True,
        )


def _warm_up(urls: list[str], dialect: str, headers: dict[str, str], count: int, timeout_s: float) -> None:
    """First requests load sessions and caches; they are not part of the measurement."""
    call = next(calls(dialect))
    for url in urls:
        for _ in range(count):
            try:
                httpx.post(url + call.path, json=call.body, headers=headers, timeout=timeout_s)
            except httpx.HTTPError as exc:
                raise PiAxeraError(f"warm-up request to {url} failed: {exc}") from exc


def _sweep(args: argparse.Namespace, urls: list[str], pids: list[int], headers: dict[str, str]) -> list[dict]:
    results = []
    if args.warmup:
        _warm_up(urls, args.dialect, headers, args.warmup, args.timeout)
    for concurrency in args.concurrency:
        plan = Plan(
            urls=urls,
            concurrency=concurrency,
            dialect=args.dialect,
            max_requests=args.requests,
            duration_s=args.duration,
            timeout_s=args.timeout,
            honour_retry_after=args.honour_retry_after,
            headers=headers,
            pids=pids,
        )
        line = _ProgressLine(f"{len(urls)} inst, {concurrency} clients")
        summary = asyncio.run(run_plan(plan, line))
        line.done(summary)
        results.append(summary)
    return results


def charts_wanted(asked: bool | None) -> bool:
    """Charts need the 'plot' extra (matplotlib). Asked for with ``--charts`` without it: the one-line
    missing-extra error, before any request is sent. By default: skipped, with a note that says how."""
    from pi_axera_sd.settings_errors import install_command

    if asked is False:
        return False
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    if asked:
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
    print(
        f"note: no charts (matplotlib is not installed); for charts: {install_command('plot')}",
        file=sys.stderr,
    )
    return False


def run_loadtest(args: argparse.Namespace) -> int:
    from pi_axera_sd.loadtest.instances import InstanceError, started
    from pi_axera_sd.loadtest.report import markdown_table, write_charts

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the progress
    if bool(args.url) == bool(args.models_dir):
        print("error: give --url (running services) or --models (instances started here)", file=sys.stderr)
        return exitcodes.CONFIG
    if args.url and (args.instances or args.serve_env):
        print("error: --instances and --serve-env need --models (instances started here)", file=sys.stderr)
        return exitcodes.CONFIG
    charts = charts_wanted(args.charts)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    try:
        if args.url:
            results += _sweep(args, [u.rstrip("/") for u in args.url], args.server_pid or [], headers)
        else:
            for count in args.instances or [1]:
                with started(count, args.models_dir, out / "logs", dict(args.serve_env or [])) as running:
                    urls = [i.url for i in running]
                    results += _sweep(args, urls, [i.proc.pid for i in running], headers)
    except InstanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.RUNTIME
    except PiAxeraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.CONFIG
    meta = {"title": args.title, "cpu_count": os.cpu_count(), "dialect": args.dialect, "results": results}
    (out / "loadtest.json").write_text(json.dumps(meta, indent=2) + "\n")
    table = markdown_table(results)
    (out / "loadtest.md").write_text(table)
    sys.stdout.write(table)
    written = [out / "loadtest.json", out / "loadtest.md"]
    if charts:
        written += write_charts(results, out, args.title)
    print("wrote " + ", ".join(str(p) for p in written))
    return exitcodes.OK
