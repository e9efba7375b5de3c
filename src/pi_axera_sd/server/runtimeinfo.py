"""What runs the model, in one small dict: logged at start, shown by ``/health`` and
``/sdapi/v1/options`` (``runtime=auto`` picks it, so users need to see what it picked)."""

from __future__ import annotations

from typing import Any

from pi_axera_sd.engine.pipeline import Pipeline


def _precision(runtime: str, provider: str) -> str:
    if runtime == "openvino":
        return provider.rsplit("/", 1)[-1]  # "CPU/bf16" -> "bf16"
    return "npu" if runtime == "axengine" else "f32"


def _variant(runtime: str, filename: str) -> str:
    if runtime == "axengine":
        return "axmodel"  # compiled by Pulsar2; its precision is fixed at compile time
    return "int8" if ".int8." in filename else "fp32"


def runtime_info(pipeline: Pipeline) -> dict[str, Any]:
    """``{"runtime": "openvino", "precision": "bf16", "variant": "int8", "sessions": {...}}``
    (runtime and precision of the UNet, where nearly all the time goes)."""
    unet = pipeline.unet
    return {
        "runtime": unet.runtime,
        "precision": _precision(unet.runtime, unet.provider),
        "variant": _variant(unet.runtime, unet.path.name),
        "tiny_vae": pipeline.vae_decoder_tiny is not None,
        "sessions": {role: f"{s.runtime}/{s.provider}" for role, s in sorted(pipeline.sessions.items())},
    }
