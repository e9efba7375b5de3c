"""Where the model files of AXERA's SD1.5-LCM layout are, and which runtime opens each.

The layout (see AXERA-TECH/lcm-lora-sdv1-5) is::

    models/
      tokenizer/{vocab.json,merges.txt,...}
      text_encoder/sd15_text_encoder_sim.{onnx,axmodel}
      unet.{onnx,axmodel}            (+ unet.onnx.data, external weights)
      vae_decoder.{onnx,axmodel}
      vae_encoder.{onnx,axmodel}     (img2img only)
      vae_decoder_tiny.{onnx,axmodel} (optional TAESD decoder: ~18x less work than the full one)
      time_input_txt2img.npy  time_input_img2img.npy
      manifest.json                  (written by our export tool; optional)

Each path can be overridden by the seed's environment variables (see :mod:`pi_axera_sd.config`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pi_axera_sd.errors import ModelError

TEXT_ENCODER_STEM = "text_encoder/sd15_text_encoder_sim"
MANIFEST = "manifest.json"
DEFAULT_VAE_SCALING = 0.18215
DEFAULT_TIMESTEPS = (999, 759, 499, 259)


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

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.root.resolve().name)

    @property
    def vae_scaling_factor(self) -> float:
        return float(self.manifest.get("vae_scaling_factor", DEFAULT_VAE_SCALING))

    @property
    def tiny_vae_scaling_factor(self) -> float:
        return float(self.manifest.get("tiny_vae_scaling_factor") or 1.0)  # TAESD works on unscaled latents

    @property
    def timesteps(self) -> tuple[int, ...]:
        """The txt2img timesteps that the rows of ``time_input_txt2img.npy`` belong to."""
        return tuple(int(t) for t in self.manifest.get("timesteps", DEFAULT_TIMESTEPS))

    def files(self) -> dict[str, Path | None]:
        return {
            "tokenizer": self.tokenizer_dir,
            "text_encoder": self.text_encoder,
            "unet": self.unet,
            "vae_decoder": self.vae_decoder,
            "vae_encoder": self.vae_encoder,
            "vae_decoder_tiny": self.vae_decoder_tiny,
            "time_input_txt2img": self.time_input_txt2img,
            "time_input_img2img": self.time_input_img2img,
        }


def _pick(stem: Path, prefer_axmodel: bool, variant: str | None = None) -> Path:
    """``stem.axmodel`` or ``stem.onnx``, whichever exists, in the preferred order; with a
    ``variant`` (e.g. ``int8``), its OpenVINO IR ``stem.<variant>.xml`` first when present."""
    if variant:
        candidate = stem.with_name(f"{stem.name}.{variant}.xml")
        if candidate.is_file():
            return candidate
    order = [".axmodel", ".onnx"] if prefer_axmodel else [".onnx", ".axmodel"]
    for suffix in order:
        candidate = stem.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return stem.with_suffix(order[0])


def _tokenizer_dir(text_dir: Path) -> Path:
    for candidate in (text_dir / "tokenizer", text_dir):
        if (candidate / "vocab.json").is_file() and (candidate / "merges.txt").is_file():
            return candidate
    return text_dir / "tokenizer"


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
    root = Path(root)
    from pi_axera_sd.engine.layout_diffusers import is_diffusers_layout, resolve_diffusers_layout

    if is_diffusers_layout(root):  # the per-component folders of diffusers/optimum exports
        return resolve_diffusers_layout(root, text_dir=text_dir, overrides=overrides)
    text_root = Path(text_dir) if text_dir is not None else root
    given = {k: Path(v) for k, v in (overrides or {}).items() if v}
    vae_encoder = given.get("vae_encoder") or _pick(root / "vae_encoder", prefer_axmodel)
    tiny = given.get("vae_decoder_tiny") or _pick(root / "vae_decoder_tiny", prefer_axmodel)
    t2i = given.get("time_input_txt2img") or root / "time_input_txt2img.npy"
    i2i = given.get("time_input_img2img") or root / "time_input_img2img.npy"
    return ModelLayout(
        root=root,
        tokenizer_dir=given.get("tokenizer") or _tokenizer_dir(text_root),
        text_encoder=given.get("text_encoder") or _pick(text_root / TEXT_ENCODER_STEM, prefer_axmodel),
        unet=given.get("unet") or _pick(root / "unet", prefer_axmodel, variant),
        vae_decoder=given.get("vae_decoder") or _pick(root / "vae_decoder", prefer_axmodel, variant),
        vae_encoder=vae_encoder if vae_encoder.is_file() or "vae_encoder" in given else None,
        vae_decoder_tiny=tiny if tiny.is_file() or "vae_decoder_tiny" in given else None,
        time_input_txt2img=t2i if t2i.is_file() or "time_input_txt2img" in given else None,
        time_input_img2img=i2i if i2i.is_file() or "time_input_img2img" in given else None,
        manifest=_read_manifest(root),
    )


def missing_models_hint(models_dir: str | Path) -> str:
    """The exact commands that put a model in ``models_dir``, for 'no model found' messages."""
    d = str(models_dir)
    return (
        f"Get a model into {d}: 'pi-axera-sd models pull axera --dest {d}' (AX650N NPU .axmodel files, "
        f"needs pyaxengine), 'pi-axera-sd models pull openvino --dest {d}' (CPU, OpenVINO INT8 LCM), "
        f"or for CPU/GPU 'pi-axera-sd models export stable-diffusion-v1-5/"
        f"stable-diffusion-v1-5 {d} --lora latent-consistency/lcm-lora-sdv1-5' (needs the [export] extra); "
        f"then check it with 'pi-axera-sd models verify {d}'."
    )


def check_layout(layout: ModelLayout) -> None:
    """Raise :class:`ModelError` naming every required file that is missing."""
    problems = []
    tok = layout.tokenizer_dir
    for name in ("vocab.json", "merges.txt"):
        if not (tok / name).is_file():
            problems.append(f"tokenizer file {tok / name} (CLIP BPE {name})")
    for label, path in (
        ("text encoder", layout.text_encoder),
        ("UNet", layout.unet),
        ("VAE decoder", layout.vae_decoder),
    ):
        if not path.is_file():
            problems.append(f"{label} {path} (.onnx or .axmodel)")
    for label, opt_path in (
        ("VAE encoder", layout.vae_encoder),
        ("tiny VAE decoder", layout.vae_decoder_tiny),
        ("txt2img time input", layout.time_input_txt2img),
        ("img2img time input", layout.time_input_img2img),
    ):
        if opt_path is not None and not opt_path.is_file():
            problems.append(f"{label} {opt_path}")
    if problems:
        raise ModelError(
            "model files missing: " + "; ".join(problems) + ". " + missing_models_hint(layout.root)
        )
