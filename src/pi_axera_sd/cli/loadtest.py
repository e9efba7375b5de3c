"""``pi-axera-sd loadtest``: the sweep, its live progress line and its output files."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

import httpx

from pi_axera_sd import exitcodes
from pi_axera_sd.errors import PiAxeraError
from pi_axera_sd.loadtest.dialects import DIALECTS, calls
from pi_axera_sd.loadtest.driver import Plan, Progress, run_plan


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"want comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"want numbers >= 1, got {text!r}")
    return values


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"want KEY=VALUE, got {text!r}")
    return key, value


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


def cmd_loadtest(args: argparse.Namespace) -> int:
    from pi_axera_sd.loadtest.instances import InstanceError, started
    from pi_axera_sd.loadtest.report import markdown_table, write_charts

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the progress
    if bool(args.url) == bool(args.models_dir):
        print("error: give --url (running services) or --models (instances started here)", file=sys.stderr)
        return exitcodes.CONFIG
    if args.url and (args.instances or args.serve_env):
        print("error: --instances and --serve-env need --models (instances started here)", file=sys.stderr)
        return exitcodes.CONFIG
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
    if args.charts:
        try:
            written += write_charts(results, out, args.title)
        except PiAxeraError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exitcodes.CONFIG
    print("wrote " + ", ".join(str(p) for p in written))
    return exitcodes.OK


def register(sub: argparse._SubParsersAction, _models_sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loadtest",
        help="concurrent clients against running services or instances started here; JSON, table, charts",
        description="Sweeps client concurrency (and instance counts with --models) and reports, per "
        "configuration: answers by status, lost requests (no HTTP answer), images/s, latency "
        "p50/p95/p99, time to first image, 503s with or without Retry-After and server RSS (local).",
    )
    target = p.add_argument_group("target (one of)")
    target.add_argument("--url", action="append", help="a running service (repeat for several)")
    target.add_argument("--models", dest="models_dir", type=Path, help="start instances on this model folder")
    p.add_argument(
        "--instances", type=_int_list, help="with --models: instance counts, e.g. 1,2,3 (default 1)"
    )
    p.add_argument("--serve-env", action="append", type=_env_pair, metavar="KEY=VALUE", help="for instances")
    p.add_argument(
        "--server-pid", action="append", type=int, help="with --url: local pid whose RSS to report"
    )
    p.add_argument("--dialect", choices=DIALECTS, default="generate")
    p.add_argument("--concurrency", type=_int_list, default=[1, 2, 4, 8, 16], help="clients, e.g. 1,2,4")
    p.add_argument("--requests", type=int, default=40, help="requests per configuration (at most)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per configuration (at most)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one request may take")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured requests per endpoint first")
    p.add_argument(
        "--honour-retry-after",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on 503, wait Retry-After and resend (default) or move on",
    )
    p.add_argument("--token", default=os.environ.get("PI_AXERA_SD_API_TOKEN"), help="bearer token")
    p.add_argument("--out", type=Path, default=Path("loadtest-results"), help="folder for the outputs")
    p.add_argument("--charts", action=argparse.BooleanOptionalAction, default=True, help="PNG charts")
    p.add_argument("--title", default="pi-axera-sd loadtest", help="chart title")
    p.set_defaults(func=cmd_loadtest)
