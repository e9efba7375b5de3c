"""A stand-in for AXERA's pyaxengine (``import axengine``), which only installs on AX650N hosts.

It exposes pyaxengine's API (``InferenceSession(path, providers=...)``, ``get_inputs()`` /
``get_outputs()`` with numpy dtypes, ``run(names, feed)``, ``get_available_providers()``) and
executes the ``.axmodel`` file, which in these tests holds ONNX bytes, with ONNX Runtime. Like the
NPU's compiled text encoder it declares ``input_ids`` as int32 and rejects any other feed dtype, so
tests prove the engine's NPU path casts and feeds exactly what the hardware runtime needs.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnxruntime as ort

from pi_axera_sd.runtime.base import to_numpy_dtype


@dataclass
class NodeArg:
    name: str
    shape: list[int]
    dtype: np.dtype


class InferenceSession:
    opened: ClassVar[list[tuple[str, list[str]]]] = []
    feeds: ClassVar[list[dict[str, np.dtype]]] = []

    def __init__(self, path, providers=None):
        self._ort = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        InferenceSession.opened.append((str(path), list(providers or [])))
        self._inputs = []
        for node in self._ort.get_inputs():
            dtype = to_numpy_dtype(node.type)
            if dtype == np.int64:
                dtype = np.dtype(np.int32)  # the NPU compiler narrows integer inputs
            self._inputs.append(NodeArg(node.name, list(node.shape), dtype))
        self._outputs = [
            NodeArg(n.name, list(n.shape), to_numpy_dtype(n.type)) for n in self._ort.get_outputs()
        ]

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self._outputs

    def run(self, output_names, input_feed):
        InferenceSession.feeds.append({k: v.dtype for k, v in input_feed.items()})
        ort_feed = {}
        for spec in self._inputs:
            value = input_feed[spec.name]
            if value.dtype != spec.dtype:
                raise TypeError(f"{spec.name}: NPU input must be {spec.dtype}, got {value.dtype}")
            ort_type = self._ort_type(spec.name)
            ort_feed[spec.name] = value.astype(ort_type)
        return self._ort.run(output_names, ort_feed)

    def _ort_type(self, name):
        for node in self._ort.get_inputs():
            if node.name == name:
                return to_numpy_dtype(node.type)
        raise KeyError(name)


def install(monkeypatch, providers=("AXCLRTExecutionProvider",)) -> types.ModuleType:
    module = types.ModuleType("axengine")
    module.InferenceSession = InferenceSession
    module.get_available_providers = lambda: list(providers)
    InferenceSession.opened = []
    InferenceSession.feeds = []
    monkeypatch.setitem(sys.modules, "axengine", module)
    return module
