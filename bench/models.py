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
    """INT8 OpenVINO variants of the benchmark model (``models quantize``): the UNet, the VAE decoder
    and the encoder, each made once (the VAE's to the tool's PSNR budget)."""
    from pi_axera_sd.modeltools.quantize import quantize_model

    axera = base / "axera"
    missing = [n for n in ("unet", "vae_decoder", "vae_encoder") if not (axera / f"{n}.int8.xml").is_file()]
    if not missing:
        return
    print(f"quantizing {', '.join(missing)} to INT8 (once) ...", flush=True)
    info = quantize_model(axera, components=missing)
    print(f"quantized in {info['seconds']} s", flush=True)


def ensure_deepcache(base: Path) -> Path:
    """A sibling of the benchmark model (``<base>-deepcache``) that adds the DeepCache UNet pair and
    the TAESD encoder, exported once from the same weights. The files of ``<base>/axera`` are linked,
    never modified (another benchmark reads them); the manifest is copied, since quantising writes it."""
    target = base.with_name(base.name + "-deepcache")
    _link_base_files(base / "axera", target / "axera")
    done = target / ".complete"
    if done.is_file():
        return target
    import torch
    from diffusers import AutoencoderTiny, StableDiffusionPipeline

    from pi_axera_sd.engine.contract import AXERA_TIME_INPUT
    from pi_axera_sd.modeltools.export_deepcache import export_deep_cache
    from pi_axera_sd.modeltools.export_sd import export_tiny_vae_encoder, time_embeddings

    started = time.perf_counter()
    axera = target / "axera"
    for folder in ("diffusers", "taesd"):
        if not (target / folder).exists():
            (target / folder).symlink_to(base / folder)
    print(f"exporting the DeepCache UNet pair and the TAESD encoder into {axera} ...", flush=True)
    pipe = StableDiffusionPipeline.from_pretrained(
        str(base / "diffusers"), safety_checker=None, requires_safety_checker=False
    )
    unet = pipe.unet.eval()
    latent = int(unet.config.sample_size)
    example = (
        torch.randn(1, unet.config.in_channels, latent, latent),
        torch.from_numpy(time_embeddings(unet, [999])),
        torch.randn(1, pipe.tokenizer.model_max_length, pipe.text_encoder.config.hidden_size),
    )
    export_deep_cache(
        unet, axera, "embedding", example, ["sample", AXERA_TIME_INPUT, "encoder_hidden_states"]
    )
    taesd = AutoencoderTiny.from_pretrained(str(base / "taesd"))
    export_tiny_vae_encoder(taesd, axera, latent * 8)
    done.write_text(f"{time.perf_counter() - started:.0f} s\n")
    print(f"exported in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def _link_base_files(source: Path, target: Path) -> None:
    """Hard links to the base model's files (OpenVINO refuses ONNX external data that a symbolic link
    resolves outside the model's folder), a copy where the filesystem cannot link; folders linked."""
    import shutil

    from pi_axera_sd.engine.contract import MANIFEST

    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        link = target / item.name
        if item.name == MANIFEST:
            if not link.is_file():
                shutil.copyfile(item, link)
        elif item.is_dir():
            if not link.exists():
                link.symlink_to(item)
        elif link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            try:
                link.hardlink_to(item)
            except OSError:
                shutil.copyfile(item, link)


def ensure_deepcache_int8(target: Path) -> None:
    """INT8 variants of the DeepCache pair in the ``-deepcache`` folder (``models quantize``), made once."""
    axera = target / "axera"
    if (axera / "unet_deep.int8.xml").is_file() and (axera / "unet_shallow.int8.xml").is_file():
        return
    from pi_axera_sd.modeltools.quantize import DEEP_CACHE_COMPONENTS, quantize_model

    print("quantizing the DeepCache pair to INT8 (once) ...", flush=True)
    info = quantize_model(axera, components=DEEP_CACHE_COMPONENTS)
    print(f"quantized in {info['seconds']} s", flush=True)
