"""Where the CLIP files of an interrogation model folder are.

The layout (what ``pi-axera-sd models export-clip`` writes, and the original service's names)::

    models/clip/
      clip_base_vision.{onnx,axmodel}   pixel_values [1,3,224,224] -> image embeds or pooled output
      clip_base_text.{onnx,axmodel}     input_ids [N,77] -> text embeds, EOS hidden state, or all states
      visual_projection.npy             optional [hidden, dim]: applied on the CPU to the vision output
      text_projection.npy               optional [hidden, dim]: applied on the CPU to the text output
      tokenizer/{tokenizer.json | vocab.json,merges.txt} optional: the package's CLIP BPE files otherwise
      clip_manifest.json                optional: source, logit scale, preprocessing, projections
      cache/                            taxonomy embeddings (see :mod:`.cache`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pi_axera_sd.engine.contract_checks import tokenizer_form
from pi_axera_sd.errors import ModelError

VISION_STEM = "clip_base_vision"
TEXT_STEM = "clip_base_text"
VISION_PROJECTION = "visual_projection.npy"
TEXT_PROJECTION = "text_projection.npy"
MANIFEST = "clip_manifest.json"
MANIFEST_FORMAT = "pi-axera-sd-clip/1"


@dataclass(frozen=True)
class ClipLayout:
    """Resolved paths of one CLIP model; projections are ``None`` when the towers include them."""

    root: Path
    vision: Path
    text: Path
    vision_projection: Path | None
    text_projection: Path | None
    tokenizer_dir: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.root.resolve().name)

    @property
    def logit_scale(self) -> float:
        """Multiplier of cosine similarities before a softmax (CLIP's trained value is 100)."""
        return float(self.manifest.get("logit_scale", 100.0))

    @property
    def text_max_length(self) -> int:
        return int(self.manifest.get("text_max_length", 77))


def _pick(stem: Path, prefer_axmodel: bool) -> Path | None:
    order = (".axmodel", ".onnx") if prefer_axmodel else (".onnx", ".axmodel")
    for suffix in order:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable CLIP manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: a CLIP manifest must be a JSON object")
    return data


def has_clip_files(root: Path) -> bool:
    """Whether ``root`` holds either CLIP tower (the service then enables interrogation)."""
    return any(_pick(root / stem, False) for stem in (VISION_STEM, TEXT_STEM))


def _tokenizer_dir(candidates: list[Path]) -> Path:
    from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir

    for folder in candidates:
        if tokenizer_form(folder) is not None:
            return folder
    return packaged_tokenizer_dir()  # every OpenAI CLIP uses this BPE


def _projection(folders: list[Path], name: str, manifest_key: str, manifest: dict[str, Any]) -> Path | None:
    """The projection file for one tower (in the model folder or beside the tower), or None when
    the manifest says the tower includes it."""
    if manifest.get(manifest_key) is True:
        return None
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    if manifest.get(manifest_key) is False:
        raise ModelError(f"{folders[0] / name} missing: {MANIFEST} says that tower's output is not projected")
    return None


def resolve_clip_layout(
    root: str | Path,
    *,
    vision: str | Path | None = None,
    text: str | Path | None = None,
    prefer_axmodel: bool = False,
) -> ClipLayout:
    """Find the CLIP files under ``root``; ``vision`` / ``text`` are explicit tower paths.

    Raises :class:`ModelError` naming what is missing.
    """
    root = Path(root)
    manifest = read_manifest(root)
    vision_path = Path(vision) if vision else _pick(root / VISION_STEM, prefer_axmodel)
    text_path = Path(text) if text else _pick(root / TEXT_STEM, prefer_axmodel)
    problems = []
    if vision_path is None:
        problems.append(f"image tower {root / VISION_STEM}.onnx or .axmodel")
    elif not vision_path.is_file():
        problems.append(f"image tower {vision_path} (CLIP_VISION_MODEL)")
    if text_path is None:
        problems.append(f"text tower {root / TEXT_STEM}.onnx or .axmodel")
    elif not text_path.is_file():
        problems.append(f"text tower {text_path} (CLIP_TEXT_MODEL)")
    if problems:
        raise ModelError(
            "CLIP files missing: " + "; ".join(problems) + ". Make a CLIP folder with "
            "'pi-axera-sd models export-clip SOURCE OUT' and point CLIP_DIR at it."
        )
    assert vision_path is not None and text_path is not None
    return ClipLayout(
        root=root,
        vision=vision_path,
        text=text_path,
        vision_projection=_projection(
            [root, vision_path.parent], VISION_PROJECTION, "vision_projected", manifest
        ),
        text_projection=_projection([root, text_path.parent], TEXT_PROJECTION, "text_projected", manifest),
        tokenizer_dir=_tokenizer_dir([root / "tokenizer", text_path.parent / "tokenizer", root]),
        manifest=manifest,
    )
