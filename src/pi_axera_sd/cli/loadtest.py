"""``pi-axera-sd loadtest``: its flags. The run (:mod:`pi_axera_sd.loadtest.sweep`) and its HTTP client
are imported when the command runs, not when the parser is built."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pi_axera_sd.loadtest.dialects import DIALECTS


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


def cmd_loadtest(args: argparse.Namespace) -> int:
    from pi_axera_sd.loadtest.sweep import run_loadtest

    return run_loadtest(args)


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
    p.add_argument(
        "--charts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="PNG charts (default: when the 'plot' extra is installed)",
    )
    p.add_argument("--title", default="pi-axera-sd loadtest", help="chart title")
    p.set_defaults(func=cmd_loadtest)
