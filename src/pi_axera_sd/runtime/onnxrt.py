"""ONNX Runtime sessions (CPU by default, CUDA when asked for and available)."""

from __future__ import annotations

import logging
from pathlib import Path

from pi_axera_sd.runtime.base import Session, load_failure
from pi_axera_sd.runtime.options import RuntimeOptions

log = logging.getLogger(__name__)


def providers_for(device: str, available: list[str]) -> list[str]:
    """The provider list for ``device``; CUDA falls back to CPU (with a warning) when absent."""
    if device == "cuda":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.warning(
            "CUDA requested but onnxruntime has no CUDAExecutionProvider; using CPU",
            extra={"available_providers": available},
        )
    return ["CPUExecutionProvider"]


def open_onnxruntime(path: Path, options: RuntimeOptions) -> Session:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if options.threads:
        so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = 1
    providers = providers_for(options.device, ort.get_available_providers())
    try:
        inner = ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        raise load_failure(path, "ONNX Runtime", exc) from exc
    return Session(inner, path, runtime="onnxruntime", provider=inner.get_providers()[0])
