"""Throughput through HAProxy with one instance behind it, then three, on this machine.

Starts three ``pi-axera-sd serve`` instances on a model folder (a tiny random one by default),
writes the HAProxy configuration with ``pi-axera-sd haproxy`` for the first one and then for all
three, and drives each set-up with ``pi-axera-sd loadtest`` through the front door. Prints a table
and the 3-vs-1 throughput ratio. Needs Debian's haproxy (``make haproxy``).

    python bench/haproxy_scale.py --clients 6 --duration 20
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pi_axera_sd.loadtest.instances import free_port, started

CLI = str(Path(sys.executable).with_name("pi-axera-sd"))


def _front_door(servers: list[str], tmp: Path, n: int) -> tuple[subprocess.Popen, str]:
    front = free_port()
    out = tmp / f"lb{n}"
    args = [arg for s in servers for arg in ("--server", s)]
    subprocess.run(
        [CLI, "haproxy", *args, "--bind", f"127.0.0.1:{front}", "--stats-socket", str(tmp / f"s{n}.sock"),
         "--stats-bind", f"127.0.0.1:{free_port()}", "--haproxy-user", "", "-o", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    proc = subprocess.Popen([binary, "-db", "-f", str(out / "haproxy.cfg")], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{front}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every server up: /ready through the front door on each
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                time.sleep(2.5)  # health checks (inter 1s, rise 2) bring the others up too
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("HAProxy did not come up")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per set-up")
    ap.add_argument("--models", type=Path, help="model folder (default: a tiny random one, made here)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/haproxy-scale"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pi-axera-sd-lb-") as name:
        tmp = Path(name)
        models = args.models
        if models is None:
            models = tmp / "tiny"
            subprocess.run([CLI, "models", "random", str(models)], check=True, capture_output=True)
        env = {"PI_AXERA_SD_CLIP_DIR": "/nonexistent"}
        with started(3, models, tmp / "logs", env) as instances:
            addresses = [i.url.removeprefix("http://") for i in instances]
            for n in (1, 3):
                proc, url = _front_door(addresses[:n], tmp, n)
                try:
                    out = args.out / f"{n}-instances"
                    subprocess.run(
                        [CLI, "loadtest", "--url", url, "--concurrency", str(args.clients),
                         "--requests", str(args.clients * 1000), "--duration", str(args.duration),
                         "--no-charts", "--out", str(out)],
                        check=True, stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                finally:
                    proc.terminate()
                    proc.wait(10)
                r = json.loads((out / "loadtest.json").read_text())["results"][0]
                rows.append((n, r))
    print("| instances behind HAProxy | clients | status | lost | img/s | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for n, r in rows:
        status = " ".join(f"{k}:{v}" for k, v in r["status"].items())
        lat = r["latency_ms"]
        cells = [n, r["concurrency"], status, r["lost"], r["images_per_s"], lat["p50"], lat["p95"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    one, three = rows[0][1]["images_per_s"], rows[1][1]["images_per_s"]
    print(f"throughput 3 instances / 1 instance: {three / one:.2f}x")
    return 1 if any(r["lost"] for _, r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
