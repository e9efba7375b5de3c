"""How the loaded model is named to A1111 clients (sd-models, options, info, infotext)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

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
