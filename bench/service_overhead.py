"""Service overhead per image: ``POST /generate`` round trips vs the bare engine, same model, one run.

Bare engine: ``pipeline.generate`` + PNG (with infotext) + base64, in this process.
Service: the real ``pi-axera-sd serve`` in a subprocess on loopback, driven by one keep-alive
client making sequential requests (JSON in, JSON with the base64 PNG out, parsed).
Both use the same prompt and the seeds 0..n-1, after the same number of warm-up images, and the
two sides alternate in blocks so that drifting load on the machine affects both alike.

    python bench/service_overhead.py [--models DIR] [-n 50] [--warmup 5] [--json out.json]

Without ``--models`` a tiny random SD1.5-shaped model (128x128 output) is exported to a temporary
folder first (needs the [export] extra), which makes the overhead stand out: on a 3 s NPU image
the same absolute overhead is a far smaller share.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pi_axera_sd.engine.imageio import encode_png, to_base64
from pi_axera_sd.engine.infotext import result_infotext
from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline

PROMPT = "a photograph of a red fox in the snow, highly detailed"


def tiny_model(folder: Path) -> Path:
    # In a child process: torch (used by the export) left loaded here would compete for the cores.
    command = [str(Path(sys.executable).with_name("pi-axera-sd")), "models", "random", str(folder)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2),
        "min_ms": round(ordered[0], 2),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(models: Path) -> tuple[subprocess.Popen, httpx.Client]:
    port = _free_port()
    env = {**os.environ, "MODELS_DIR": str(models), "HOST": "127.0.0.1", "PORT": str(port)}
    env["PI_AXERA_SD_LOG_LEVEL"] = "warning"  # the access log is not what is measured
    command = [str(Path(sys.executable).with_name("pi-axera-sd")), "serve"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    deadline = time.monotonic() + 120
    while True:
        try:
            if client.get("/ready").status_code == 200:
                return proc, client
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("the service did not become ready")
        time.sleep(0.1)


def bare_image(pipeline: Pipeline, seed: int) -> float:
    start = time.perf_counter()
    result = pipeline.generate(GenerationParams(PROMPT, seed))
    to_base64(encode_png(result.pixels, result_infotext(result)))
    return (time.perf_counter() - start) * 1000.0


def served_image(client: httpx.Client, seed: int) -> float:
    start = time.perf_counter()
    body = client.post("/generate", json={"prompt": PROMPT, "seed": seed}).json()
    elapsed = (time.perf_counter() - start) * 1000.0
    if body.get("status") != "ok":
        raise SystemExit(f"request failed: {body}")
    return elapsed


def measure(models: Path, n: int, warmup: int, block: int) -> tuple[list[float], list[float]]:
    """Alternate blocks of ``block`` bare images and ``block`` served images, so drifting load from
    elsewhere on the machine hits both sides alike. Not image by image: ONNX Runtime's worker
    threads spin for a moment after each run and would steal the cores from the other side."""
    pipeline = Pipeline.load(resolve_layout(models))
    proc, client = start_service(models)
    try:
        for i in range(warmup):
            bare_image(pipeline, i)
            served_image(client, i)
        bare: list[float] = []
        served: list[float] = []
        for first in range(0, n, block):
            seeds = range(first, min(n, first + block))
            bare += [bare_image(pipeline, seed) for seed in seeds]
            served += [served_image(client, seed) for seed in seeds]
        return bare, served
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="model folder (default: export a tiny random one)")
    parser.add_argument("-n", type=int, default=50, help="timed images per side")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--block", type=int, default=10, help="images per side before switching")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        models = args.models or tiny_model(Path(tmp) / "tiny")
        bare, served = measure(models, args.n, args.warmup, args.block)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "model": str(args.models or "tiny random SD1.5 (128x128)"),
        "images": args.n,
        "bare_engine": summary(bare),
        "service": summary(served),
    }
    result["overhead_ms_per_image"] = {
        "median": round(result["service"]["median_ms"] - result["bare_engine"]["median_ms"], 2),
        "mean": round(result["service"]["mean_ms"] - result["bare_engine"]["mean_ms"], 2),
        # Best case of each side: the least disturbed by other load on a shared machine.
        "min": round(result["service"]["min_ms"] - result["bare_engine"]["min_ms"], 2),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
