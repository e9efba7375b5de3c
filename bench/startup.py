"""Start-up time and memory of `pi-axera-sd serve` on the full-size benchmark model, per configuration.

    python bench/startup.py [--size full|tiny] [--configs onnxruntime openvino ...] [--warm-starts N]

For each configuration, in one run: a cold start (empty OpenVINO model cache) timed from process
start to the first 200 from ``/ready``; one txt2img and one img2img image through ``/generate``; the
server's own peak memory (``VmHWM`` of its process, read from /proc) at ready and after the images;
then a warm start (second start, same cache) with one more image, whose peak is what a restarted
service needs (no compiling), and a few more images whose resident-size growth is the leak check.
Writes ``bench/results/startup-*.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models import ensure_int8, ensure_sd15  # noqa: E402

PI_AXERA_SD = str(Path(sys.executable).with_name("pi-axera-sd"))
CONFIGS = {
    "onnxruntime": {"PI_AXERA_SD_RUNTIME": "onnxruntime"},
    "openvino": {"PI_AXERA_SD_RUNTIME": "openvino"},
    "openvino:int8": {"PI_AXERA_SD_RUNTIME": "openvino", "PI_AXERA_SD_VARIANT": "int8"},
    "openvino:int8unet": {"PI_AXERA_SD_RUNTIME": "openvino", "PI_AXERA_SD_VARIANT": "int8"},
    # the all-INT8 variant as before runtime/ovmemory.py: model-file pages stay mapped after compiling
    "openvino:int8:keep-mapped": {
        "PI_AXERA_SD_RUNTIME": "openvino",
        "PI_AXERA_SD_VARIANT": "int8",
        "PI_AXERA_SD_OPENVINO_RELEASE_MAPPED": "0",
    },
}
LEAK_IMAGES = 4  # images after the first on the warm start; RSS growth per image is the leak check
READY_LIMIT_S = 900.0


def _status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (GB) of one process, from /proc (its own high-water mark, not its parent's)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024**2
    return out


def _reset_peak(pid: int) -> None:
    """Start ``VmHWM`` again from the current resident size (Linux >= 4.0: ``clear_refs`` 5), so the
    peak read after an image is that image's, not the loading's (which may have been higher)."""
    # if it cannot, VmHWM stays the peak since start and per-image figures become upper bounds
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _image(server: Server, body: dict) -> tuple[float, float]:
    """One image through ``/generate``: its seconds and the server's peak resident GB during it."""
    _reset_peak(server.proc.pid)
    seconds = server.generate(body)
    return seconds, _status(server.proc.pid)["VmHWM"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _init_png(size: int = 512) -> str:
    from PIL import Image

    rng = np.random.default_rng(123)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    img = np.clip(ramp[None, :, None] + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


class Server:
    def __init__(self, models: Path, env: dict[str, str], cache: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PI_AXERA_SD_")},
            "MODELS_DIR": str(models),
            "PORT": str(self.port),
            "PI_AXERA_SD_OPENVINO_CACHE_DIR": str(cache),
            "PI_AXERA_SD_CLIP_DIR": "/nonexistent",
            "PI_AXERA_SD_AUTO_DOWNLOAD": "0",
            "PI_AXERA_SD_SHUTDOWN_GRACE_S": "5",
            **env,
        }
        self.log = log
        self.started = time.perf_counter()
        with log.open("w") as out:
            self.proc = subprocess.Popen([PI_AXERA_SD, "serve"], env=full_env, stdout=out, stderr=out)

    def wait_ready(self) -> float:
        deadline = self.started + READY_LIMIT_S
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log.read_text()[-1500:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("serve not ready in time")

    def generate(self, body: dict) -> float:
        t = time.perf_counter()
        r = httpx.post(f"{self.url}/generate", json=body, timeout=600)
        r.raise_for_status()
        return time.perf_counter() - t

    def _model_lines(self) -> list[dict]:
        lines = [json.loads(x) for x in self.log.read_text().splitlines() if x.startswith("{")]
        return [x for x in lines if x.get("msg") == "OpenVINO model ready"]

    def from_cache(self) -> list[bool]:
        return [x["from_cache"] for x in self._model_lines()]

    def load_s(self) -> dict[str, float]:
        """Seconds OpenVINO took to compile or import each model (where a start's time goes)."""
        return {Path(x["model"]).name: x["load_s"] for x in self._model_lines()}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def measure(name: str, models: Path, tmp: Path, warm_starts: int = 1) -> dict:
    env = dict(CONFIGS[name])
    if name == "openvino:int8unet":  # INT8 UNet, BF16 VAE
        env["VAE_DECODER_MODEL"] = str(models / "vae_decoder.onnx")
        env["VAE_ENCODER_MODEL"] = str(models / "vae_encoder.onnx")
    cache = tmp / f"cache-{name.replace(':', '_')}"
    row: dict = {"config": name}
    server = Server(models, env, cache, tmp / f"{name}-cold.log")
    try:
        row["cold_ready_s"] = server.wait_ready()
        at_ready = _status(server.proc.pid)
        row["rss_at_ready_gb"] = at_ready["VmRSS"]
        row["load_peak_rss_gb"] = at_ready["VmHWM"]
        txt = {"prompt": "a red fox in the snow", "seed": 1}
        row["txt2img_s"], txt_peak = _image(server, txt)
        img = {**txt, "init_image": _init_png(), "strength": 0.5}
        row["img2img_s"], img_peak = _image(server, img)
        row["peak_rss_gb"] = max(at_ready["VmHWM"], txt_peak, img_peak)
        row["per_image_gb"] = {
            "txt2img": txt_peak - at_ready["VmRSS"],
            "img2img": img_peak - at_ready["VmRSS"],
        }
        row["cold_from_cache"] = server.from_cache()
    finally:
        server.stop()
    server = Server(models, env, cache, tmp / f"{name}-warm.log")
    try:
        row["warm_ready_s"] = server.wait_ready()
        at_ready = _status(server.proc.pid)
        row["warm_rss_at_ready_gb"] = at_ready["VmRSS"]
        row["warm_from_cache"] = server.from_cache()
        row["warm_load_s"] = server.load_s()
        # a warm start compiles nothing, so its peak (with one image) is what a restarted service needs
        _, image_peak = _image(server, {"prompt": "a red fox in the snow", "seed": 1})
        first = _status(server.proc.pid)
        row["warm_peak_rss_gb"] = max(at_ready["VmHWM"], image_peak)
        # leak check: resident size after each further image, same request
        rss = [first["VmRSS"]]
        for i in range(LEAK_IMAGES):
            server.generate({"prompt": "a red fox in the snow", "seed": 2 + i})
            rss.append(_status(server.proc.pid)["VmRSS"])
        row["warm_rss_after_images_gb"] = rss
        # from the second further image on: the first may still grow an allocator's arena once
        row["rss_growth_per_image_mb"] = (rss[-1] - rss[1]) / (LEAK_IMAGES - 1) * 1024
    finally:
        server.stop()
    # more warm starts, timed to /ready only: on a shared machine one start is a noisy sample
    starts = [row["warm_ready_s"]]
    for i in range(warm_starts - 1):
        server = Server(models, env, cache, tmp / f"{name}-warm{i + 2}.log")
        try:
            starts.append(server.wait_ready())
        finally:
            server.stop()
    row["warm_ready_all_s"] = starts
    row["warm_ready_s"] = float(np.median(starts))
    print(json.dumps(row), flush=True)
    return row


def format_table(rows: list[dict]) -> str:
    lines = [
        "| config | cold start s | warm start s (median) | warm from cache | RSS at ready GB "
        "| loading peak GB "
        "| peak RSS GB "
        "| warm peak RSS GB | txt2img s | GB per txt2img | GB per img2img | MB RSS growth per image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | error: {r['error']} |")
            continue
        warm = r["warm_from_cache"]
        cached = f"{sum(warm)}/{len(warm)} models" if warm else "(no cache)"
        lines.append(
            f"| {r['config']} | {r['cold_ready_s']:.1f} | {r['warm_ready_s']:.1f} | {cached} "
            f"| {r['rss_at_ready_gb']:.2f} | {r['load_peak_rss_gb']:.2f} | {r['peak_rss_gb']:.2f} "
            f"| {r['warm_peak_rss_gb']:.2f} "
            f"| {r['txt2img_s']:.1f} "
            f"| {r['per_image_gb']['txt2img']:.2f} | {r['per_image_gb']['img2img']:.2f} "
            f"| {r['rss_growth_per_image_mb']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--warm-starts", type=int, default=1, help="warm starts per configuration (median)")
    args = ap.parse_args()
    base = ensure_sd15(size=args.size)
    if any("int8" in c for c in args.configs):
        ensure_int8(base)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            print(f"  {name} ...", flush=True)
            try:
                rows.append(measure(name, base / "axera", Path(tmp), args.warm_starts))
            except (RuntimeError, httpx.HTTPError) as exc:
                rows.append({"config": name, "error": str(exc).splitlines()[-1][:300]})
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"startup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"size": args.size, "rows": rows}, indent=2))
    table = format_table(rows)
    path.with_suffix(".md").write_text(table + "\n")
    print("\n" + table + f"\n\nwrote {path}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
