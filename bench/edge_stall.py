"""How long the JSON edge (:mod:`pi_axera_sd.server.core.json_body`) can stall the event loop.

Each hostile or large body is decoded on a worker thread, as the service does for bodies over
256 KiB, while this thread wakes every millisecond; the longest gap between wake-ups is the
longest time the decode held the GIL, i.e. the longest a ``/health`` would have waited. The goal
is 100 ms (issue 9); the ratio column is the worst gap over that goal (below 1 is met).

    python bench/edge_stall.py [--repeat 3]

Timings depend on the machine's load: run it on an otherwise idle machine for numbers to quote.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import threading
import time
from collections.abc import Callable

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.server.core.json_body import decode_json

GOAL_S = 0.100


def _image_body(megabytes: int) -> bytes:
    blob = base64.b64encode(os.urandom(megabytes * 1_000_000 * 3 // 4)).decode()
    return json.dumps({"prompt": "x", "init_images": [blob]}).encode()


BODIES: dict[str, Callable[[], bytes]] = {
    "image 45 MB": lambda: _image_body(45),
    "image 20 MB, PHP-style \\/ escapes": lambda: _image_body(20).replace(b"/", b"\\/"),
    "80,000 labels": lambda: json.dumps(
        {"categories": {"g": [f"label {i}" for i in range(80_000)]}}
    ).encode(),
    "100,000 strings of 60 chars": lambda: json.dumps(["x" * 60] * 99_000).encode(),
    "99,000 integers of 100 digits": lambda: ("[" + ",".join(["9" * 100] * 99_000) + "]").encode(),
    "10,000-level nesting": lambda: b"[" * 10_000 + b"]" * 10_000,
    "45 MB of whitespace": lambda: b"[" + b" " * 45_000_000 + b"1]",
}


def worst_gap(raw: bytes) -> tuple[float, float, str]:
    """(seconds the decode took, longest wake-up gap in seconds, outcome)."""
    outcome = ["accepted"]

    def work() -> None:
        try:
            decode_json(raw)
        except InvalidInput as exc:
            outcome[0] = f"400: {exc}"[:60]

    worker = threading.Thread(target=work)
    start = time.perf_counter()
    worker.start()
    worst = 0.0
    while worker.is_alive():
        before = time.perf_counter()
        time.sleep(0.001)
        worst = max(worst, time.perf_counter() - before - 0.001)
    return time.perf_counter() - start, worst, outcome[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per body; the worst gap is kept")
    args = parser.parse_args()
    print(f"{'body':38} {'MB':>6} {'decode ms':>10} {'worst gap ms':>13} {'gap/goal':>9}  outcome")
    for name, make in BODIES.items():
        raw = make()
        runs = [worst_gap(raw) for _ in range(args.repeat)]
        took = min(r[0] for r in runs)
        gap = max(r[1] for r in runs)
        mb = len(raw) / 1e6
        print(f"{name:38} {mb:6.1f} {took * 1000:10.1f} {gap * 1000:13.1f} {gap / GOAL_S:9.2f}  {runs[0][2]}")


if __name__ == "__main__":
    main()
