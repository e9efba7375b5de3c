"""A stand-in for AXERA's pyaxengine 0.1.3 (``import axengine``), which only installs on AX650N hosts.

It copies the contract of the public wheel as read from its source (2026-11), not from hardware:

* ``InferenceSession(path_or_bytes, sess_options=None, providers=None, provider_options=None, **kw)``;
  only the top-level ``provider_options=[{"device_id": N}]`` chooses an M.2 card, the tuple form
  ``providers=[(name, {...})]`` is accepted and ignored (the device then stays 0);
* ``get_inputs(shape_group=0)`` / ``get_outputs(shape_group=0)`` return ``NodeArg(name, dtype, shape)``
  in that field order, ``dtype`` a numpy dtype, ``shape`` a list of ints;
* ``run(output_names, input_feed, run_options=None, shape_group=0)``: a missing input is a
  ``ValueError``, a wrong shape or dtype a bare ``AssertionError``; outputs come back as numpy
  copies in the model's order, whatever order was asked for;
* the failures before any inference: no driver library -> ``ImportError("No providers found")`` at
  import; AXCL init failure, no device, board init failure and a refused model -> ``RuntimeError``
  from session creation, with the wheel's messages; a failed run -> ``RuntimeError``.

Unverified against real hardware: the exact error codes in the messages (``0x...``), whether ``run``
returns only the asked-for outputs or all of them (this returns the asked-for ones, in model
order), and the timing of device initialisation. The ``.axmodel`` files of the tests hold ONNX
bytes, executed by ONNX Runtime; like the NPU's compiled text encoder, integer inputs are declared
int32.

Tests choose faults with :func:`install` (in-process) or, for a ``serve`` subprocess, with the
environment read by ``tests/standin/axengine.py``: ``FAKE_AXENGINE_FAULT`` (one of
:data:`FAULTS`), ``FAKE_AXENGINE_PROVIDERS`` (comma list) and ``FAKE_AXENGINE_RECORD`` (a file that
gets one JSON line per session opened, with the device id).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import types
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnxruntime as ort

from pi_axera_sd.runtime.base import to_numpy_dtype

M2 = "AXCLRTExecutionProvider"
BOARD = "AxEngineExecutionProvider"
FAULTS = ("no_driver", "axcl_init", "no_device", "sys_init", "load")
_SESSION_FAULTS = {
    "axcl_init": "Failed to initialize axcl runtime. -1",
    "no_device": "Get AXCL device failed 0x8030010b, find total 0 device.",
    "sys_init": "Failed to initialize ax sys.",
    "load": "axclrtEngineLoadFromFile failed 0x80300015",
}


class SessionOptions:
    """Empty in the wheel too."""


@dataclass
class NodeArg:
    name: str
    dtype: np.dtype
    shape: list[int]


class _State:
    providers: ClassVar[list[str]] = [M2]
    fault: ClassVar[str | None] = None
    fault_opens: ClassVar[int] = 0  # with a session fault: how many opens fail (0 = all)
    run_failures: ClassVar[int] = 0  # the next N runs raise the driver's RuntimeError
    record: ClassVar[str | None] = None


class InferenceSession:
    opened: ClassVar[list[dict]] = []
    feeds: ClassVar[list[dict[str, np.dtype]]] = []

    def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None, **kwargs):
        message = _SESSION_FAULTS.get(_State.fault or "")
        if message is not None and (_State.fault_opens <= 0 or len(_fault_log) < _State.fault_opens):
            _fault_log.append(message)
            raise RuntimeError(message)
        device = 0
        names = [p if isinstance(p, str) else p[0] for p in (providers or [])]
        if provider_options:
            device = int(provider_options[0].get("device_id", 0))
        entry = {"path": str(path_or_bytes), "providers": names, "device_id": device}
        InferenceSession.opened.append(entry)
        if _State.record:
            with open(_State.record, "a", encoding="utf-8") as f:
                f.write(json.dumps({**entry, "pid": os.getpid()}) + "\n")
        self._ort = ort.InferenceSession(str(path_or_bytes), providers=["CPUExecutionProvider"])
        self._ort_types = {n.name: to_numpy_dtype(n.type) for n in self._ort.get_inputs()}
        self._inputs = [
            NodeArg(n.name, _npu_dtype(to_numpy_dtype(n.type)), _static(n.shape))
            for n in self._ort.get_inputs()
        ]
        self._outputs = [
            NodeArg(n.name, to_numpy_dtype(n.type), _static(n.shape)) for n in self._ort.get_outputs()
        ]

    def get_inputs(self, shape_group: int = 0) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self, shape_group: int = 0) -> list[NodeArg]:
        return list(self._outputs)

    def run(self, output_names, input_feed, run_options=None, shape_group=0):
        InferenceSession.feeds.append({k: v.dtype for k, v in input_feed.items()})
        ort_feed = {}
        for spec in self._inputs:
            if spec.name not in input_feed:
                raise ValueError(f"input {spec.name} not found in feed")
            value = input_feed[spec.name]
            assert list(value.shape) == spec.shape and value.dtype == spec.dtype
            ort_feed[spec.name] = value.astype(self._ort_types[spec.name])
        if _State.run_failures > 0:
            _State.run_failures -= 1
            raise RuntimeError("axclrtEngineExecute failed 0x80300016")
        results = self._ort.run(None, ort_feed)
        wanted = set(output_names) if output_names else None
        return [
            np.array(r, copy=True)
            for spec, r in zip(self._outputs, results, strict=True)
            if wanted is None or spec.name in wanted
        ]


_fault_log: list[str] = []


def _npu_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.int32) if dtype == np.int64 else dtype  # the NPU compiler narrows integers


# A .axmodel has one fixed shape: Pulsar2 compiles a dynamic ONNX at the shape its config gives
# (batch 1, CLIP's 77 context tokens). The stand-in fixes our exports' free axes the same way.
_COMPILED_DIMS = {"sequence": 77}


def _static(shape) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else _COMPILED_DIMS.get(d, 1) for d in shape]


def get_available_providers() -> list[str]:
    return list(_State.providers)


class _NoDriverFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import axengine`` fail the way the wheel does without a driver library."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "axengine":
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ImportError("No providers found. Please make sure you have installed one of the runtimes.")


def configure(
    providers=(M2,), fault: str | None = None, fault_opens: int = 0, record: str | None = None
) -> None:
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    _State.providers = list(providers)
    _State.fault, _State.fault_opens, _State.record = fault, fault_opens, record
    _State.run_failures = 0
    _fault_log.clear()
    InferenceSession.opened = []
    InferenceSession.feeds = []


def fail_next_runs(count: int) -> None:
    _State.run_failures = count


def install(
    monkeypatch, providers=(M2,), fault: str | None = None, fault_opens: int = 0
) -> types.ModuleType | None:
    """Put the stand-in behind ``import axengine`` for this test; ``fault`` picks a failure mode."""
    configure(providers, fault, fault_opens)
    if fault == "no_driver":
        monkeypatch.delitem(sys.modules, "axengine", raising=False)
        monkeypatch.setattr(sys, "meta_path", [_NoDriverFinder(), *sys.meta_path])
        return None
    module = types.ModuleType("axengine")
    module.InferenceSession = InferenceSession
    module.SessionOptions = SessionOptions
    module.NodeArg = NodeArg
    module.get_available_providers = get_available_providers
    monkeypatch.setitem(sys.modules, "axengine", module)
    return module
