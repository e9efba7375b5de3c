"""Named models a pull can fetch (``axera``, ``openvino``...) and how a spec resolves to one."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pi_axera_sd.engine.contract import (
    openvino_layout_patterns,
)
from pi_axera_sd.errors import PiAxeraError

log = logging.getLogger(__name__)


# what the engine reads of a diffusers/optimum OpenVINO export (no ONNX/PyTorch copies, no extras)
OPENVINO_LAYOUT_FILES = openvino_layout_patterns()


class PullError(PiAxeraError):
    """A pull that could not finish; the message is one line meant for the user."""


@dataclass(frozen=True)
class Preset:
    name: str
    repo_id: str
    description: str
    allow_patterns: tuple[str, ...] | None = None  # None: every file of the repo
    subfolder: str | None = None  # repo folder holding the model; None: found after the download


PRESETS: dict[str, Preset] = {
    "axera": Preset(
        "axera",
        "AXERA-TECH/lcm-lora-sdv1-5",
        "AXERA's SD1.5 + LCM-LoRA compiled for the AX650N NPU (.axmodel, needs pyaxengine)",
        # the compiled graphs, time embeddings and tokenizer; no demo images, no ONNX duplicates
        allow_patterns=("*.axmodel", "*.npy", "*.json", "*.txt"),
    ),
    "openvino": Preset(
        "openvino",
        "OpenVINO/LCM_Dreamshaper_v7-int8-ov",
        "LCM Dreamshaper v7 as OpenVINO IR, INT8 UNet (~860 MB), for CPUs; no torch needed",
        allow_patterns=OPENVINO_LAYOUT_FILES,
    ),
    "openvino-fp16": Preset(
        "openvino-fp16",
        "OpenVINO/LCM_Dreamshaper_v7-fp16-ov",
        "the same model with FP16 weights (larger; a little closer to the original)",
        allow_patterns=OPENVINO_LAYOUT_FILES,
    ),
}


ALIASES = {
    "npu": "axera",
    "ax650": "axera",
    "ax650n": "axera",
    "lcm-lora-sdv1-5": "axera",
    "cpu": "openvino",
    "openvino-int8": "openvino",
}


def resolve_spec(spec: str) -> Preset:
    """A preset by name, alias or repo id, or any other ``owner/name``: that repo, all its files."""
    key = spec.strip().lower()
    if key in PRESETS or key in ALIASES:
        return PRESETS[ALIASES.get(key, key)]
    for preset in PRESETS.values():  # a preset's repo id means the preset (its file patterns too)
        if preset.repo_id.lower() == key:
            return preset
    parts = spec.strip().split("/")
    if len(parts) == 2 and all(parts):
        return Preset(spec.strip(), spec.strip(), "hub repository")
    names = ", ".join(n for p in PRESETS for n in (p, *(a for a, t in ALIASES.items() if t == p)))
    raise PullError(f"{spec!r} is neither a preset ({names}) nor a hub repo id like owner/name")


def preset_help() -> str:
    lines = [f"  {p.name:<13} {p.repo_id}: {p.description}" for p in PRESETS.values()]
    for alias, target in ALIASES.items():
        lines.append(f"  {alias:<13} = {target}")
    return "\n".join(lines)
