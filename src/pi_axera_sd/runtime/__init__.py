"""Runtimes behind one session interface: ONNX Runtime, pyaxengine (AX650N NPU), OpenVINO."""

from __future__ import annotations

from pathlib import Path

from pi_axera_sd.errors import ModelError
from pi_axera_sd.runtime.base import Session, TensorSpec
from pi_axera_sd.runtime.options import RuntimeOptions

__all__ = ["RuntimeOptions", "Session", "TensorSpec", "open_session", "runtime_for"]


def runtime_for(path: Path, options: RuntimeOptions) -> str:
    """Which runtime opens ``path``: the file type decides unless a runtime is forced."""
    if path.suffix == ".axmodel":
        return "axengine"
    if path.suffix == ".xml":
        return "openvino"  # OpenVINO IR (e.g. the INT8 variants written by `models quantize`)
    if options.runtime in ("auto", "axengine"):
        return "onnxruntime"
    return options.runtime


def open_session(path: str | Path, options: RuntimeOptions | None = None) -> Session:
    """Open one model file as a :class:`Session` with the runtime its type (or ``options``) calls for."""
    options = options or RuntimeOptions()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    runtime = runtime_for(path, options)
    if runtime == "axengine":
        from pi_axera_sd.runtime.axengine import open_axengine

        return open_axengine(path, options)
    if runtime == "openvino":
        from pi_axera_sd.runtime.openvino import open_openvino

        return open_openvino(path, options)
    from pi_axera_sd.runtime.onnxrt import open_onnxruntime

    return open_onnxruntime(path, options)
