"""Pull a model folder from the Hugging Face hub (or a mirror) into the folder the engine loads.

huggingface_hub does the transfer: the shared cache, resume of dropped connections, size checks,
``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE``. What this package adds (one module each):

- presets (``axera``/``npu`` -> ``AXERA-TECH/lcm-lora-sdv1-5``, NPU files only; ``openvino``/``cpu``
  -> ``OpenVINO/LCM_Dreamshaper_v7-int8-ov`` and ``openvino-fp16``, the OpenVINO IR files only);
- an integrity pass after the download: every file is hashed against the hub's listing
  (``HfApi.verify_repo_checksums``: sha256 for LFS files, the git blob id for the rest; plain HTTP
  downloads are otherwise only size-checked) and against our ``manifest.json`` when the model has one;
- finding the model inside the repo (the folder holding ``unet.axmodel``/``unet.onnx``, or the
  ``model_index.json`` of a diffusers/optimum export, wherever the publisher put it) and placing
  its files at ``--dest`` as hard links into the cache (a copy across filesystems, or
  symlinks/copies on request), so ``models/`` holds exactly one model;
- one-line errors for the usual failures (unknown repo, gated repo, no network, offline cache miss).
"""

from __future__ import annotations

from pi_axera_sd.modeltools.hub.discovery import (
    DEFAULT_RESOLUTION,
    choose_model_dir,
    folder_resolution,
    model_dirs_in,
)
from pi_axera_sd.modeltools.hub.download import PullResult, human_bytes, pull, render_result
from pi_axera_sd.modeltools.hub.network import (
    PROBE_TIMEOUT_S,
    cannot_reach_line,
    display_url,
    explain_hub_error,
    is_transport_error,
    quiet_hub_client_logs,
    unreachable,
)
from pi_axera_sd.modeltools.hub.placement import COMPONENT_FILES, LINK_MODES, STATE_FILE, place_model
from pi_axera_sd.modeltools.hub.presets import (
    ALIASES,
    OPENVINO_LAYOUT_FILES,
    PRESETS,
    Preset,
    PullError,
    preset_help,
    resolve_spec,
)

__all__ = [
    "ALIASES",
    "COMPONENT_FILES",
    "DEFAULT_RESOLUTION",
    "LINK_MODES",
    "OPENVINO_LAYOUT_FILES",
    "PRESETS",
    "PROBE_TIMEOUT_S",
    "STATE_FILE",
    "Preset",
    "PullError",
    "PullResult",
    "cannot_reach_line",
    "choose_model_dir",
    "display_url",
    "explain_hub_error",
    "folder_resolution",
    "human_bytes",
    "is_transport_error",
    "model_dirs_in",
    "place_model",
    "preset_help",
    "pull",
    "quiet_hub_client_logs",
    "render_result",
    "resolve_spec",
    "unreachable",
]
