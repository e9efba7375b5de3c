"""The diffusers/optimum folder layout: one folder per component, as Hugging Face exports publish it.

This is the layout of ``OpenVINO/LCM_Dreamshaper_v7-int8-ov`` and of any optimum ONNX or OpenVINO
export of a Stable Diffusion pipeline::

    models/
      model_index.json                       (marks the layout; may name the source model)
      scheduler/scheduler_config.json
      tokenizer/{vocab.json,merges.txt,...}
      text_encoder/model.onnx | openvino_model.xml(+.bin)
      unet/model.onnx(+model.onnx_data) | openvino_model.xml(+.bin), unet/config.json
      vae_decoder/model.onnx | openvino_model.xml(+.bin), vae_decoder/config.json
      vae_encoder/model.onnx | openvino_model.xml(+.bin)   (img2img only)

The UNet is a plain diffusers one: it takes the timestep and, for LCM models distilled with a
guidance input (``time_cond_proj_dim`` in ``unet/config.json``), ``timestep_cond``. What the engine
needs from the configs (VAE scaling, latent size, guidance width and scale) is gathered into the
layout's ``manifest`` mapping, the same place AXERA-layout models keep it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pi_axera_sd.engine.contract import (
    COMPONENT_CONFIG,
    MODEL_INDEX,
    ONNX_FILE,
    OPENVINO_FILE,
    SCHEDULER_CONFIG,
    TEXT_ENCODER,
    TOKENIZER,
    UNET,
    VAE_DECODER,
    VAE_DECODER_TINY,
    VAE_ENCODER,
)
from pi_axera_sd.errors import ModelError


def is_diffusers_layout(root: str | Path) -> bool:
    """True for a folder in the per-component layout (``model_index.json`` or a ``unet/`` model)."""
    root = Path(root)
    unet = root / UNET
    return (root / MODEL_INDEX).is_file() or any((unet / n).is_file() for n in (ONNX_FILE, OPENVINO_FILE))


def component_file(folder: Path, prefer_openvino: bool = False) -> Path:
    """``model.onnx`` or ``openvino_model.xml`` in ``folder``, whichever exists (preferred first)."""
    order = (OPENVINO_FILE, ONNX_FILE) if prefer_openvino else (ONNX_FILE, OPENVINO_FILE)
    for name in order:
        if (folder / name).is_file():
            return folder / name
    return folder / order[0]


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def model_facts(root: Path) -> dict[str, Any]:
    """What the engine reads from the configs, as manifest keys (absent keys keep the defaults)."""
    index = _json(root / MODEL_INDEX)
    unet = _json(root / UNET / COMPONENT_CONFIG)
    vae = _json(root / VAE_DECODER / COMPONENT_CONFIG)
    scheduler = _json(root / SCHEDULER_CONFIG)
    facts: dict[str, Any] = {"layout": "diffusers"}
    source = str(index.get("_name_or_path") or "")
    if source and not source.startswith(("/", ".")):
        facts["name"] = source.rstrip("/").rsplit("/", 1)[-1]
    if vae.get("scaling_factor") is not None:
        facts["vae_scaling_factor"] = float(vae["scaling_factor"])
    if isinstance(unet.get("sample_size"), int):
        facts["sample_size"] = unet["sample_size"]
    if isinstance(unet.get("time_cond_proj_dim"), int):
        facts["time_cond_proj_dim"] = unet["time_cond_proj_dim"]
    # no standard key holds it; honour one if a publisher wrote it, else the engine's default
    for config in (index, scheduler):
        if isinstance(config.get("guidance_scale"), int | float):
            facts["guidance_scale"] = float(config["guidance_scale"])
            break
    return facts


def resolve_diffusers_layout(
    root: str | Path,
    *,
    text_dir: str | Path | None = None,
    overrides: Mapping[str, str | Path] | None = None,
    prefer_openvino: bool = False,
):
    """The :class:`~pi_axera_sd.engine.layout.ModelLayout` of a per-component folder."""
    from pi_axera_sd.engine.layout import ModelLayout, _read_manifest

    root = Path(root)
    text_root = Path(text_dir) if text_dir is not None else root
    given = {k: Path(v) for k, v in (overrides or {}).items() if v}
    encoder = given.get(VAE_ENCODER) or component_file(root / VAE_ENCODER, prefer_openvino)
    return ModelLayout(
        root=root,
        tokenizer_dir=given.get(TOKENIZER) or text_root / TOKENIZER,
        text_encoder=given.get(TEXT_ENCODER) or component_file(text_root / TEXT_ENCODER, prefer_openvino),
        unet=given.get(UNET) or component_file(root / UNET, prefer_openvino),
        vae_decoder=given.get(VAE_DECODER) or component_file(root / VAE_DECODER, prefer_openvino),
        vae_encoder=encoder if encoder.is_file() or VAE_ENCODER in given else None,
        vae_decoder_tiny=given.get(VAE_DECODER_TINY),
        time_input_txt2img=None,  # the plain UNet takes the timestep
        time_input_img2img=None,
        manifest={**model_facts(root), **_read_manifest(root)},
    )
