"""Export a CLIP model (transformers ``CLIPModel``, or open_clip when installed) to the CLIP layout.

Default: towers that output projected embeddings, the text tower with dynamic batch and sequence
axes (batched, trimmed cache builds on ONNX Runtime). ``split_projections``: towers that output
the pooled image state and the EOS text state, plus ``visual_projection.npy`` /
``text_projection.npy`` (``[hidden, dim]``) applied on the CPU, the original service's layout.
``int32_ids`` makes the text tower take int32 ids, and ``static_text_batch`` fixes its input to
``[batch, 77]``: what NPU compilers (Pulsar2) need.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from pi_axera_sd import __version__
from pi_axera_sd.errors import ModelError
from pi_axera_sd.fileio import sha256_file
from pi_axera_sd.interrogate.layout import (
    MANIFEST,
    MANIFEST_FORMAT,
    TEXT_PROJECTION,
    TEXT_STEM,
    VISION_PROJECTION,
    VISION_STEM,
)
from pi_axera_sd.interrogate.preprocess import CLIP_MEAN, CLIP_STD
from pi_axera_sd.modeltools.onnx_io import export_module
from pi_axera_sd.modeltools.progress import Stages

log = logging.getLogger(__name__)

OPEN_CLIP_PREFIX = "open_clip:"
_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "tokenizer_config.json",
)


def export_onnx(
    module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict | None = None
) -> Path:
    """The shared exporter with dynamic axes (CLIP towers are small: no external data)."""
    return export_module(module, args, path, inputs, outputs, dynamic_axes=dynamic)


def _transformers_towers(model, split: bool, int32_ids: bool):
    """(vision module, text module, projections or None) for a transformers CLIPModel."""
    import torch

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision_model = model.vision_model
            self.visual_projection = model.visual_projection

        def forward(self, pixel_values):
            pooled = self.vision_model(pixel_values=pixel_values).pooler_output
            return pooled if split else self.visual_projection(pooled)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text_model = model.text_model
            self.text_projection = model.text_projection

        def forward(self, input_ids):
            ids = input_ids.long()
            hidden = self.text_model(input_ids=ids).last_hidden_state
            # EOS is CLIP's highest id, so its position is the argmax (int32: ONNX ArgMax).
            eos = ids.to(torch.int32).argmax(dim=-1)
            pooled = hidden[torch.arange(hidden.shape[0]), eos]
            return pooled if split else self.text_projection(pooled)

    projections = None
    if split:
        projections = {
            VISION_PROJECTION: model.visual_projection.weight.detach().T.numpy(),
            TEXT_PROJECTION: model.text_projection.weight.detach().T.numpy(),
        }
    return Vision().eval(), Text().eval(), projections


def _open_clip_towers(model):
    import torch

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model.encode_image(pixel_values)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            return self.model.encode_text(input_ids.long())

    return Vision().eval(), Text().eval(), None


def _describe_transformers(model) -> dict[str, Any]:
    cfg = model.config
    return {
        "image_size": int(cfg.vision_config.image_size),
        "projection_dim": int(cfg.projection_dim),
        "vision_hidden": int(cfg.vision_config.hidden_size),
        "text_hidden": int(cfg.text_config.hidden_size),
        "text_max_length": int(cfg.text_config.max_position_embeddings),
        "logit_scale": min(100.0, float(model.logit_scale.detach().exp())),
    }


def _copy_tokenizer(out: Path, source_dir: Path | None) -> None:
    from pi_axera_sd.engine.contract_checks import tokenizer_form
    from pi_axera_sd.engine.tokenizer import complete_tokenizer
    from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir

    target = out / "tokenizer"
    target.mkdir(parents=True, exist_ok=True)
    folder = packaged_tokenizer_dir()
    for candidate in [source_dir / "tokenizer", source_dir] if source_dir else []:
        if tokenizer_form(candidate) is not None:
            folder = candidate
            break
    for name in _TOKENIZER_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, target / name)
    complete_tokenizer(target)


def export_clip_model(
    model,
    out_dir: str | Path,
    *,
    split_projections: bool = False,
    int32_ids: bool = False,
    static_text_batch: int | None = None,
    source: str | None = None,
    name: str | None = None,
    image_settings: dict[str, Any] | None = None,
    tokenizer_source: Path | None = None,
) -> dict[str, Any]:
    """Write the CLIP layout for a loaded transformers ``CLIPModel``; returns the manifest.

    ``image_settings`` may give ``image_resize`` (shortest side), ``image_size`` (crop),
    ``image_mean`` and ``image_std``; CLIP's defaults otherwise.
    """
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = model.float().eval()
    if hasattr(model, "vision_model") and hasattr(model, "text_model"):
        info = _describe_transformers(model)
        vision, text, projections = _transformers_towers(model, split_projections, int32_ids)
    else:  # an open_clip CLIP
        if split_projections:
            raise ModelError("--split-projections needs a transformers CLIPModel (open_clip: projected only)")
        info = dict(image_settings or {})
        vision, text, projections = _open_clip_towers(model)
    size = int((image_settings or {}).get("image_size", info["image_size"]))
    ids_dtype = torch.int32 if int32_ids else torch.long
    length = int(info["text_max_length"])

    pixels = torch.randn(1, 3, size, size)
    ids = torch.full((static_text_batch or 2, length), 49407, dtype=ids_dtype)
    ids[:, 0] = 49406
    ids[:, 1] = 320
    vision_out = "pooler_output" if split_projections else "image_embeds"
    text_out = "pooler_output" if split_projections else "text_embeds"
    stages = Stages("export-clip", {"image tower": 3, "text tower": 2, "checksums": 1})
    with stages.step("image tower"):
        export_onnx(vision, (pixels,), out / f"{VISION_STEM}.onnx", ["pixel_values"], [vision_out])
    dynamic = (
        None if static_text_batch else {"input_ids": {0: "batch", 1: "sequence"}, text_out: {0: "batch"}}
    )
    with stages.step("text tower"):
        export_onnx(text, (ids,), out / f"{TEXT_STEM}.onnx", ["input_ids"], [text_out], dynamic)
    for stale in (VISION_PROJECTION, TEXT_PROJECTION):
        (out / stale).unlink(missing_ok=True)
    for file_name, matrix in (projections or {}).items():
        np.save(out / file_name, np.ascontiguousarray(matrix, dtype=np.float32))
    _copy_tokenizer(out, tokenizer_source)

    settings = {"image_resize": size, "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD)}
    settings.update({k: v for k, v in (image_settings or {}).items() if v is not None})
    files = {}
    with stages.step("checksums"):
        for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST):
            if path.relative_to(out).parts[0] == "cache":
                continue
            entry = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            files[path.relative_to(out).as_posix()] = entry
    stages.close()
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name or out.resolve().name,
        "source": source,
        **info,
        **settings,
        "image_size": size,
        "vision_projected": not split_projections,
        "text_projected": not split_projections,
        "projection_layout": "in_out",
        "text_input_dtype": "int32" if int32_ids else "int64",
        "text_batch": static_text_batch or "dynamic",
        "text_eos": "argmax",
        "exporter": f"pi-axera-sd {__version__}",
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("CLIP export finished in %.1f s: %s", time.perf_counter() - started, out)
    return manifest


def _processor_settings(source: str) -> dict[str, Any]:
    """Resize/crop/mean/std from the source's preprocessor config; empty when it has none."""
    path = Path(source) / "preprocessor_config.json"
    if not path.is_file():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, "preprocessor_config.json"))
        except Exception:  # offline, no such file, not a hub id: CLIP's defaults apply
            return {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    size, crop = cfg.get("size"), cfg.get("crop_size")
    out: dict[str, Any] = {}
    if isinstance(size, dict) and "shortest_edge" in size:
        out["image_resize"] = int(size["shortest_edge"])
    elif isinstance(size, int):
        out["image_resize"] = size
    if isinstance(crop, dict) and "height" in crop:
        out["image_size"] = int(crop["height"])
    elif isinstance(crop, int):
        out["image_size"] = crop
    for key in ("image_mean", "image_std"):
        if isinstance(cfg.get(key), list) and len(cfg[key]) == 3:
            out[key] = [float(v) for v in cfg[key]]
    return out


def _load_open_clip(spec: str):
    import open_clip  # the 'open-clip' extra; the CLI names it and how to install it when missing

    arch, _, pretrained = spec.partition("/")
    model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=pretrained or None)
    visual = model.visual
    size = visual.image_size
    size = int(size[0] if isinstance(size, tuple | list) else size)
    cfg = getattr(visual, "preprocess_cfg", {}) or {}
    settings = {
        "image_size": size,
        "image_resize": size,
        "image_mean": list(cfg.get("mean", CLIP_MEAN)),
        "image_std": list(cfg.get("std", CLIP_STD)),
        "projection_dim": int(model.text_projection.shape[1]),
        "text_max_length": int(getattr(model, "context_length", 77)),
        "logit_scale": min(100.0, float(model.logit_scale.detach().exp())),
    }
    return model, settings


def export_clip(
    source: str | Path,
    out_dir: str | Path,
    *,
    split_projections: bool = False,
    int32_ids: bool = False,
    static_text_batch: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Load ``source`` and export it. ``source``: a transformers CLIP folder or hub id
    (``openai/clip-vit-base-patch32``), or ``open_clip:ARCH/PRETRAINED`` when open_clip is installed."""
    source = str(source)
    if source.startswith(OPEN_CLIP_PREFIX):
        model, settings = _load_open_clip(source.removeprefix(OPEN_CLIP_PREFIX))
        return export_clip_model(
            model,
            out_dir,
            int32_ids=int32_ids,
            static_text_batch=static_text_batch,
            source=source,
            name=name,
            image_settings=settings,
        )
    from transformers import CLIPModel

    try:
        model = CLIPModel.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a transformers CLIPModel from {source}: {exc}") from exc
    local = Path(source) if Path(source).is_dir() else None
    return export_clip_model(
        model,
        out_dir,
        split_projections=split_projections,
        int32_ids=int32_ids,
        static_text_batch=static_text_batch,
        source=source,
        name=name,
        image_settings=_processor_settings(source),
        tokenizer_source=local,
    )
