"""What the loaded model is: how it is named to A1111 clients (sd-models, options, info,
infotext), and what runs it (logged at start, shown by ``/health`` and ``/sdapi/v1/options``:
``runtime=auto`` picks it, so users need to see what it picked)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pi_axera_sd.engine.layout_diffusers import is_diffusers_layout
from pi_axera_sd.engine.pipeline import Pipeline


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sha256: str
    filename: str
    width: int
    height: int
    img2img: bool
    steps: int

    @property
    def hash(self) -> str:
        """A1111's short hash: the first 10 hex digits."""
        return self.sha256[:10]

    @property
    def title(self) -> str:
        """What clients show and send back as ``sd_model_checkpoint``."""
        return f"{self.name} [{self.hash}]"


def _model_folder(unet: Path) -> Path:
    """The model folder: the UNet's own folder, or its parent in the per-component layout."""
    if unet.parent.name == "unet" and is_diffusers_layout(unet.parent.parent):
        return unet.parent.parent
    return unet.parent


def describe(pipeline: Pipeline) -> ModelInfo:
    """Identify the model without reading gigabytes at startup: the fingerprint hashes the model
    name and the names and sizes of its session files (there is no single checkpoint file whose
    sha256 A1111 would report)."""
    digest = hashlib.sha256(pipeline.model_name.encode())
    for role, session in sorted(pipeline.sessions.items()):
        path = session.path
        size = path.stat().st_size if path.is_file() else -1
        digest.update(f"\0{role}\0{path.name}\0{size}".encode())
    return ModelInfo(
        name=pipeline.model_name,
        sha256=digest.hexdigest(),
        filename=str(_model_folder(pipeline.unet.path)),
        width=pipeline.width,
        height=pipeline.height,
        img2img=pipeline.supports_img2img,
        steps=len(pipeline.timesteps),
    )


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
