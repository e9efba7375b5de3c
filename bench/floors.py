"""Each benchmark configuration's arithmetic floor: its MACs at the GEMM rate of the precision each
stage runs in (FP32, BF16 or INT8), as measured in the same run by ``macs.measure_gemm_rates``."""

from __future__ import annotations

import math

from worker import deepcache_interval


def stage_precisions(config: str, provider: str) -> dict[str, str]:
    """Precision of each stage: ``fp32``, ``bf16`` or ``int8``.

    ``provider`` is what the worker reported (e.g. ``CPU/bf16``), so an OpenVINO run on a CPU without
    BF16 counts as FP32. The INT8 variants quantise the UNet and (unless ``int8unet`` or ``tiny``)
    the full VAE encoder and, unless ``floatdec``, the decoder (layers the PSNR budget keeps in float
    still count as INT8); the text encoder keeps the runtime's precision."""
    parts = config.split(":")
    runs_fp32 = config == "torch" or "onnxruntime" in parts or "bf16" not in provider
    base = "fp32" if runs_fp32 else "bf16"
    precisions = dict.fromkeys(("text", "vae_encode", "unet", "vae_decode"), base)
    if "int8" in parts or "int8unet" in parts:
        precisions["unet"] = "int8"
        if "int8" in parts and "tiny" not in parts:
            precisions["vae_encode"] = "int8"
            if "floatdec" not in parts:
                precisions["vae_decode"] = "int8"
    return precisions


def config_floor_s(
    config: str, provider: str, mode: str, steps: int, macs: dict[str, int], rates: dict[str, float]
) -> float:
    """Seconds one image would take if every GEMM/conv ran at the measured rate of its precision."""
    precisions = stage_precisions(config, provider)
    parts = config.split(":")
    tiny = "tiny" in parts
    # DeepCache (interval N): steps 0, N, 2N... run the whole UNet, the others only its shallow path
    interval = deepcache_interval(config)
    reused = steps - math.ceil(steps / interval) if interval else 0
    work = {
        "text": macs["text"],
        "unet": (steps - reused) * macs["unet"] + reused * macs.get("unet_shallow", 0),
        "vae_decode": macs["vae_decode_tiny"] if tiny else macs["vae_decode"],
    }
    if mode == "img2img":
        # tiny: the TAESD encoder where the model folder has one (the engine falls back otherwise)
        work["vae_encode"] = macs.get("vae_encode_tiny", macs["vae_encode"]) if tiny else macs["vae_encode"]
    return sum(n / (rates[precisions[stage]] * 1e9) for stage, n in work.items())
