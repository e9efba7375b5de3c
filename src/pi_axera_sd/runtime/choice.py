"""``runtime=auto``: the fastest runtime this machine has for ``.onnx`` files.

``.axmodel`` files always run on pyaxengine (the layout prefers them when an NPU is usable). For
``.onnx`` files on the CPU, OpenVINO when it is installed (4.3x ONNX Runtime FP32 on a CPU with
AMX, measured 2026-11-26, see docs/speed.md), else ONNX Runtime; ``device=cuda`` stays on ONNX Runtime.
"""

from __future__ import annotations

import importlib.util


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def effective_runtime(requested: str, device: str) -> str:
    """The runtime option sessions get: ``auto`` becomes ``openvino`` where that is the fastest."""
    if requested == "auto" and device == "cpu" and openvino_installed():
        return "openvino"
    return requested
