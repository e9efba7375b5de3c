"""Build, once, the full-size SD1.5 architecture with random weights for benchmarks.

Compute cost does not depend on weight values, so a randomly initialised UNet / VAE / CLIP
ViT-L/14 text tower of SD1.5's exact configuration takes as long as the real model. The cache
lives outside git (default ``~/.cache/pi-axera-sd/bench``, or ``PI_AXERA_SD_BENCH_CACHE``):

    <cache>/sd15-random/diffusers/   the diffusers pipeline (PyTorch baseline reads this)
    <cache>/sd15-random/taesd/       a TAESD-architecture AutoencoderTiny
    <cache>/sd15-random/axera/       the same weights exported by our tool (ONNX, AXERA layout)
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("PI_AXERA_SD_BENCH_CACHE", Path.home() / ".cache" / "pi-axera-sd" / "bench"))


def ensure_sd15(root: Path | None = None, size: str = "full") -> Path:
    """The benchmark model folder, built on first use (full: ~4 GB, ~2-10 minutes on 2 cores).
    ``size="tiny"`` builds the tiny test architecture instead (a smoke run of the benchmark)."""
    base = (root or cache_root()) / ("sd15-random" if size == "full" else f"sd15-random-{size}")
    done = base / ".complete"
    if done.is_file():
        return base
    from pi_axera_sd.modeltools.export_sd import export_pipeline
    from pi_axera_sd.modeltools.random_sd import build_sd_pipeline, build_taesd

    started = time.perf_counter()
    base.mkdir(parents=True, exist_ok=True)
    print(f"building {size} SD1.5 architecture with random weights into {base} ...", flush=True)
    pipe = build_sd_pipeline(size, seed=0)
    taesd = build_taesd(size, seed=0)
    pipe.save_pretrained(str(base / "diffusers"))
    taesd.save_pretrained(str(base / "taesd"))
    export_pipeline(
        pipe,
        base / "axera",
        name="sd15-random",
        source="random SD1.5 weights (benchmark)",
        tiny_vae=taesd,
        tiny_vae_source="random TAESD weights (benchmark)",
    )
    done.write_text(f"{time.perf_counter() - started:.0f} s\n")
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    return base


if __name__ == "__main__":
    print(ensure_sd15())


def ensure_int8(base: Path) -> None:
    """INT8 OpenVINO variants of the benchmark model (``models quantize``), made once."""
    axera = base / "axera"
    if (axera / "unet.int8.xml").is_file() and (axera / "vae_decoder.int8.xml").is_file():
        return
    from pi_axera_sd.modeltools.quantize import quantize_model

    print("quantizing UNet and VAE decoder to INT8 (once) ...", flush=True)
    info = quantize_model(axera)
    print(f"quantized in {info['seconds']} s", flush=True)
