"""Where OpenVINO keeps compiled models between starts (its ``CACHE_DIR``), one folder per model file.

Compiling the full-size UNet takes tens of seconds on a CPU; a warm start imports the compiled blob
instead. The sub-folder name is a fingerprint of the model's files (path, size, modification time),
so a re-exported or re-quantised model never picks up a stale blob.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/pi-axera-sd/openvino`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pi-axera-sd" / "openvino"


def model_files(path: Path) -> list[Path]:
    """The model file and the weight files beside it (``unet.onnx.data``, ``unet.int8.bin``, ...)."""
    stem = path.name.split(".")[0]
    return sorted(p for p in path.parent.glob(f"{stem}.*") if p.is_file())


def cache_dir_for(root: Path, path: Path) -> Path | None:
    """The folder for ``path``'s compiled blob, created; ``None`` (no caching) if it cannot be."""
    digest = hashlib.sha256()
    for file in model_files(path.resolve()):
        stat = file.stat()
        digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    folder = root / f"{path.stem}-{digest.hexdigest()[:16]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("OpenVINO model cache not usable; compiling without it: %s", exc)
        return None
    if not os.access(folder, os.W_OK):
        log.warning("OpenVINO model cache %s is not writable; compiling without it", folder)
        return None
    return folder
