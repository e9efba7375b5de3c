"""Soak: 100 clients for 2 minutes against one served tiny model, through ``pi-axera-sd loadtest``.

Reports what a long concurrent load shows: responses by status, lost requests (no HTTP answer;
must be 0), latency p50/p95 and the server's resident memory at the start and the end (drift).
Clients honour Retry-After, as a well-behaved client would. Exits 1 when a request was lost.

    python bench/soak.py                 # 100 clients, 120 s, a tiny random model made on the fly
    python bench/soak.py --clients 20 --duration 30 --models /path/to/models
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = str(Path(sys.executable).with_name("pi-axera-sd"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds")
    ap.add_argument("--models", type=Path, help="model folder (default: a tiny random one, made here)")
    ap.add_argument("--dialect", default="generate")
    ap.add_argument("--out", type=Path, default=Path("bench/results/soak"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="pi-axera-sd-soak-") as tmp:
        models = args.models
        if models is None:
            models = Path(tmp) / "tiny"
            subprocess.run([CLI, "models", "random", str(models)], check=True, capture_output=True)
        # A request budget far beyond what the duration allows: time bounds the run.
        subprocess.run(
            [
                CLI, "loadtest", "--models", str(models), "--instances", "1",
                "--concurrency", str(args.clients), "--requests", str(args.clients * 10_000),
                "--duration", str(args.duration), "--dialect", args.dialect, "--no-charts",
                "--serve-env", "PI_AXERA_SD_CLIP_DIR=/nonexistent", "--out", str(args.out),
            ],
            check=True,
        )  # fmt: skip
    r = json.loads((args.out / "loadtest.json").read_text())["results"][0]
    rss = r["rss_mb"]
    drift = None if rss["start"] is None else round(rss["end"] - rss["start"], 1)
    report = {
        "clients": r["concurrency"],
        "duration_s": r["elapsed_s"],
        "responses_by_status": r["status"],
        "lost": r["lost"],
        "p50_ms": r["latency_ms"]["p50"],
        "p95_ms": r["latency_ms"]["p95"],
        "images_per_s": r["images_per_s"],
        "rss_mb_start": rss["start"],
        "rss_mb_end": rss["end"],
        "rss_mb_peak": rss["peak"],
        "rss_drift_mb": drift,
    }
    print(json.dumps(report, indent=2))
    return 1 if r["lost"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
