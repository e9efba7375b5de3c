"""Where the model files of AXERA's SD1.5-LCM layout are, and which runtime opens each.

The layout (see AXERA-TECH/lcm-lora-sdv1-5) is::

    models/
      tokenizer/{vocab.json,merges.txt,...}
      text_encoder/sd15_text_encoder_sim.{onnx,axmodel}
      unet.{onnx,axmodel}            (+ unet.onnx.data, external weights)
      vae_decoder.{onnx,axmodel}
      vae_encoder.{onnx,axmodel}     (img2img only)
      vae_decoder_tiny.{onnx,axmodel} (optional TAESD decoder: ~18x less work than the full one)
      vae_encoder_tiny.{onnx,axmodel} (optional TAESD encoder, img2img with the tiny VAE)
      unet_deep.onnx unet_shallow.onnx (optional DeepCache pair, ``models export --deep-cache``)
      time_input_txt2img.npy  time_input_img2img.npy
      manifest.json                  (written by our export tool; optional)

Each path can be overridden by the original service's environment variables (see :mod:`pi_axera_sd.config`).

The variants people actually have (see docs/models.md, "Model layouts") also resolve here:

* ``root/models/...``: a clone of the Hugging Face repo, pointed at its root;
* "flat": ``sd15_text_encoder_sim.*`` at the root beside ``unet.*`` (the export scripts' output,
  hand-made folders, published fine-tunes), often without ``tokenizer/``;
* no ``tokenizer/`` anywhere: the packaged OpenAI CLIP BPE files serve (every SD1.5 uses them).

This resolver is the AXERA layout's entry point (:func:`resolve_layout`); other layouts (e.g. a
diffusers folder) get their own module beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pi_axera_sd.defaults import TXT2IMG_TIMESTEPS, VAE_SCALING_FACTOR
from pi_axera_sd.engine.contract import (
    AXERA_STEMS,
    AXERA_SUFFIXES,
    FLAT_TEXT_ENCODER_STEM,
    MANIFEST,
    MODEL_INDEX,
    TEXT_ENCODER,
    TEXT_ENCODER_STEM,
    TIME_INPUT_FILES,
    TIME_INPUT_IMG2IMG,
    TIME_INPUT_TXT2IMG,
    TOKENIZER,
    TOKENIZER_FILES,
    TOKENIZER_JSON,
    UNET,
    UNET_DEEP,
    UNET_SHALLOW,
    VAE_DECODER,
    VAE_DECODER_TINY,
    VAE_ENCODER,
    VAE_ENCODER_TINY,
)
from pi_axera_sd.engine.contract_checks import missing_file, tokenizer_form
from pi_axera_sd.errors import ModelError, Problem

REPO_SUBFOLDER = "models"  # the Hugging Face repo keeps the model folder under models/
LAYOUT_AXERA = "AXERA (text_encoder/ subfolder)"
LAYOUT_FLAT = "flat (sd15_text_encoder_sim at the folder root)"


@dataclass(frozen=True)
class ModelLayout:
    """Resolved paths of one SD1.5-LCM model. ``vae_encoder`` and the time inputs may be absent."""

    root: Path
    tokenizer_dir: Path
    text_encoder: Path
    unet: Path
    vae_decoder: Path
    vae_encoder: Path | None
    vae_decoder_tiny: Path | None
    time_input_txt2img: Path | None
    time_input_img2img: Path | None
    manifest: dict[str, Any] = field(default_factory=dict)
    kind: str = LAYOUT_AXERA  # which variant of the layout was found (named in error messages)
    tokenizer_packaged: bool = False  # the folder has no tokenizer; the packaged CLIP BPE serves
    warnings: tuple[str, ...] = ()  # problems that do not stop loading (e.g. a stale unused path)
    vae_encoder_tiny: Path | None = None  # optional TAESD encoder
    unet_deep: Path | None = None  # optional DeepCache pair (both or neither are used)
    unet_shallow: Path | None = None

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.root.resolve().name)

    @property
    def vae_scaling_factor(self) -> float:
        return float(self.manifest.get("vae_scaling_factor", VAE_SCALING_FACTOR))

    @property
    def tiny_vae_scaling_factor(self) -> float:
        return float(self.manifest.get("tiny_vae_scaling_factor") or 1.0)  # TAESD works on unscaled latents

    @property
    def timesteps(self) -> tuple[int, ...]:
        """The txt2img timesteps that the rows of ``time_input_txt2img.npy`` belong to."""
        return tuple(int(t) for t in self.manifest.get("timesteps", TXT2IMG_TIMESTEPS))

    def files(self) -> dict[str, Path | None]:
        return {
            TOKENIZER: self.tokenizer_dir,
            TEXT_ENCODER: self.text_encoder,
            UNET: self.unet,
            VAE_DECODER: self.vae_decoder,
            VAE_ENCODER: self.vae_encoder,
            VAE_DECODER_TINY: self.vae_decoder_tiny,
            TIME_INPUT_TXT2IMG: self.time_input_txt2img,
            TIME_INPUT_IMG2IMG: self.time_input_img2img,
        }


def _pick(stem: Path, prefer_axmodel: bool, variant: str | None = None) -> Path:
    """``stem.axmodel`` or ``stem.onnx``, whichever exists, in the preferred order; with a
    ``variant`` (e.g. ``int8``), its OpenVINO IR ``stem.<variant>.xml`` first when present."""
    if variant:
        candidate = stem.with_name(f"{stem.name}.{variant}.xml")
        if candidate.is_file():
            return candidate
    order = list(AXERA_SUFFIXES) if prefer_axmodel else list(reversed(AXERA_SUFFIXES))
    for suffix in order:
        candidate = stem.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return stem.with_suffix(order[0])


def _has_tokenizer(folder: Path) -> bool:
    return tokenizer_form(folder) is not None


def _tokenizer_dir(*folders: Path) -> tuple[Path, bool]:
    """The folder's own CLIP tokenizer (tokenizer.json or the BPE pair), else the packaged one
    (True: packaged)."""
    for folder in folders:
        for candidate in (folder / "tokenizer", folder):
            if _has_tokenizer(candidate):
                return candidate, False
    from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir

    return packaged_tokenizer_dir(), True


def _has_unet(folder: Path) -> bool:
    return any((folder / f"{AXERA_STEMS[UNET]}{suffix}").is_file() for suffix in AXERA_SUFFIXES)


def model_root(root: Path) -> Path:
    """``root``, or its ``models/`` subfolder when only that holds the UNet (a clone of the repo)."""
    nested = root / REPO_SUBFOLDER
    if not _has_unet(root) and _has_unet(nested):
        return nested
    return root


# What marks a model folder, in either layout: AXERA's UNet file, or a diffusers/optimum model index.
MODEL_MARKERS = (f"{UNET}.axmodel", f"{UNET}.onnx", MODEL_INDEX)


def find_model(root: Path) -> list[str]:
    """The folders under ``root`` that hold a model (relative, ``""`` = ``root`` itself), shallowest
    first; hidden folders (caches, ``.git``) are skipped. The one answer to "is there a model here?"
    for serve's first run, its messages, ``models pull`` (inside a downloaded repo) and ``verify``."""
    if not root.is_dir():
        return []
    found = set()
    for marker in MODEL_MARKERS:
        for path in root.rglob(marker):
            rel = path.parent.relative_to(root)
            if not any(part.startswith(".") for part in rel.parts):
                found.add(rel.as_posix() if rel.parts else "")
    return sorted(found, key=lambda p: (p.count("/") + bool(p), p))


def model_folders(root: Path) -> list[Path]:
    """Subfolders of ``root`` that hold a model (e.g. ``models/``, ``models_320x320/``)."""
    return [root / rel for rel in find_model(root) if rel and "/" not in rel]


def _text_encoder(text_root: Path, prefer_axmodel: bool) -> tuple[Path, str]:
    """AXERA's ``text_encoder/`` subfolder, else the flat file at the root; which layout that is."""
    nested = _pick(text_root / TEXT_ENCODER_STEM, prefer_axmodel)
    if nested.is_file():
        return nested, LAYOUT_AXERA
    flat = _pick(text_root / FLAT_TEXT_ENCODER_STEM, prefer_axmodel)
    if flat.is_file():
        return flat, LAYOUT_FLAT
    return nested, LAYOUT_AXERA


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable manifest: {exc}") from exc


def resolve_layout(
    root: str | Path = "models",
    *,
    text_dir: str | Path | None = None,
    overrides: Mapping[str, str | Path] | None = None,
    prefer_axmodel: bool = False,
    variant: str | None = None,
) -> ModelLayout:
    """Find each component under ``root`` (text encoder and tokenizer under ``text_dir``).

    ``overrides`` maps component names (``unet``, ``vae_decoder``...) to explicit paths.
    ``prefer_axmodel`` chooses ``.axmodel`` over ``.onnx`` where both exist.
    ``variant`` (``int8``) picks the quantised OpenVINO IR written by ``models quantize`` where present.
    Missing required files are reported by :func:`check_layout`, not here.
    """
    from pi_axera_sd.engine.layout_diffusers import is_diffusers_layout, resolve_diffusers_layout

    if is_diffusers_layout(Path(root)):  # the per-component folders of diffusers/optimum exports
        return resolve_diffusers_layout(Path(root), text_dir=text_dir, overrides=overrides)
    root = model_root(Path(root))
    text_root = Path(text_dir) if text_dir is not None else root
    given = {k: Path(v) for k, v in (overrides or {}).items() if v}
    warnings = []
    vae_encoder = given.get(VAE_ENCODER) or _pick(root / AXERA_STEMS[VAE_ENCODER], prefer_axmodel, variant)
    tiny = given.get(VAE_DECODER_TINY) or _pick(root / AXERA_STEMS[VAE_DECODER_TINY], prefer_axmodel)
    t2i = given.get(TIME_INPUT_TXT2IMG) or root / TIME_INPUT_FILES[TIME_INPUT_TXT2IMG]
    i2i = given.get(TIME_INPUT_IMG2IMG) or root / TIME_INPUT_FILES[TIME_INPUT_IMG2IMG]
    if "time_input_img2img" in given and not i2i.is_file():
        # Nothing reads it (img2img takes rows of the txt2img file); the original service's default env file
        # often names it, so a stale path must not stop the service.
        warnings.append(f"TIME_INPUT_IMG2IMG names {i2i}, which does not exist; not used, ignored")
    text_encoder, kind = _text_encoder(text_root, prefer_axmodel)
    if "tokenizer" in given:
        tokenizer, packaged = given["tokenizer"], False
    else:
        tokenizer, packaged = _tokenizer_dir(*dict.fromkeys((text_root, root, text_encoder.parent)))
    return ModelLayout(
        root=root,
        tokenizer_dir=tokenizer,
        text_encoder=given.get("text_encoder") or text_encoder,
        unet=given.get(UNET) or _pick(root / AXERA_STEMS[UNET], prefer_axmodel, variant),
        vae_decoder=given.get(VAE_DECODER) or _pick(root / AXERA_STEMS[VAE_DECODER], prefer_axmodel, variant),
        vae_encoder=vae_encoder if vae_encoder.is_file() or "vae_encoder" in given else None,
        vae_decoder_tiny=tiny if tiny.is_file() or "vae_decoder_tiny" in given else None,
        time_input_txt2img=t2i if t2i.is_file() or "time_input_txt2img" in given else None,
        time_input_img2img=i2i if i2i.is_file() else None,
        manifest=_read_manifest(root),
        kind=kind,
        tokenizer_packaged=packaged,
        warnings=tuple(warnings),
        vae_encoder_tiny=_existing(root / VAE_ENCODER_TINY, prefer_axmodel),
        unet_deep=_existing(root / UNET_DEEP, prefer_axmodel, variant),
        unet_shallow=_existing(root / UNET_SHALLOW, prefer_axmodel, variant),
    )


def _existing(stem: Path, prefer_axmodel: bool, variant: str | None = None) -> Path | None:
    """An optional component: its file (see :func:`_pick`), or None when the folder has none."""
    path = _pick(stem, prefer_axmodel, variant)
    return path if path.is_file() else None


def missing_models_hint(models_dir: str | Path) -> str:
    """The exact commands that put a model in ``models_dir``, for 'no model found' messages."""
    from pi_axera_sd.printed_commands import command

    d = str(models_dir)
    export = command(
        "models", "export", "stable-diffusion-v1-5/stable-diffusion-v1-5", d, "--lora",
        "latent-consistency/lcm-lora-sdv1-5",
    )  # fmt: skip
    return (
        f"Get a model into {d}: '{command('models', 'pull', 'axera', '--dest', d)}' (AX650N NPU .axmodel "
        f"files, needs pyaxengine), '{command('models', 'pull', 'openvino', '--dest', d)}' (CPU, OpenVINO "
        f"INT8 LCM), or for CPU/GPU '{export}' (needs the [export] extra); "
        f"then check it with '{command('models', 'verify', d)}'."
    )


def holds_model_files(root: Path) -> bool:
    """Whether the user clearly has a model here, even a broken one (then a 'pull' hint would mislead)."""
    if not root.is_dir():
        return False
    return bool(find_model(root)) or any(p.suffix in (".axmodel", ".onnx") for p in root.iterdir())


def check_layout(layout: ModelLayout) -> None:
    """Raise :class:`ModelError` naming every required file that is missing and the layout tried."""
    problems = []
    tok = layout.tokenizer_dir
    if tokenizer_form(tok) is None:
        problems.append(
            missing_file(
                TOKENIZER, tok / TOKENIZER_JSON, "tokenizer file", f"or {' + '.join(TOKENIZER_FILES)}"
            )
        )
    for component, label, path in (
        (TEXT_ENCODER, "text encoder", layout.text_encoder),
        (UNET, "UNet", layout.unet),
        (VAE_DECODER, "VAE decoder", layout.vae_decoder),
    ):
        if not path.is_file():
            problems.append(missing_file(component, path, label, ".onnx or .axmodel"))
    for component, label, opt_path in (
        (VAE_ENCODER, "VAE encoder", layout.vae_encoder),
        (VAE_DECODER_TINY, "tiny VAE decoder", layout.vae_decoder_tiny),
        (TIME_INPUT_TXT2IMG, "txt2img time input", layout.time_input_txt2img),
    ):
        if opt_path is not None and not opt_path.is_file():
            problems.append(missing_file(component, opt_path, label))
    if not problems:
        return
    found = tuple(problems)
    message = missing_files_message(layout, found)
    folders = model_folders(layout.root)
    if folders and not layout.unet.is_file():
        names = ", ".join(str(p) for p in folders)
        raise ModelError(
            f"{message}. {layout.root} holds model folders ({names}): point MODELS_DIR at one", found
        )
    if holds_model_files(layout.root):
        raise ModelError(
            f"{message}. Expected names: docs/models.md, 'Model layouts' (text encoder as "
            f"{TEXT_ENCODER_STEM}.* or {FLAT_TEXT_ENCODER_STEM}.* at the root).",
            found,
        )
    raise ModelError(f"{message}. {missing_models_hint(layout.root)}", found)


def missing_files_message(layout: ModelLayout, problems: Sequence[Problem]) -> str:
    """The files :func:`check_layout` found missing, without advice on where to get a model."""
    found = "; ".join(p.detail for p in problems)
    return f"model files missing in {layout.root} (layout tried: {layout.kind}): {found}"


def missing_time_input_message(layout: ModelLayout, unet: Path, input_name: str) -> str:
    """What to say when AXERA's cut UNet has no ``time_input_txt2img.npy`` to feed it."""
    expected = layout.root / "time_input_txt2img.npy"
    return (
        f"{expected} is missing (layout tried: {layout.kind}): the UNet {unet.name} takes AXERA's "
        f"precomputed time embedding ({input_name}), one float32 row per timestep, from that file. "
        "Copy time_input_txt2img.npy from the model's source (AXERA-TECH/lcm-lora-sdv1-5, models/) "
        "into the folder, or point TIME_INPUT_TXT2IMG at it."
    )
