"""OpenVINO sessions: reads the same ONNX files directly (what FastSD CPU uses on Intel/AMD CPUs).

An adaptor gives OpenVINO's compiled model ONNX Runtime's ``get_inputs``/``get_outputs``/``run``,
so the shared :class:`Session` wrapper (dtype casting, name checks) is used unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pi_axera_sd.errors import RuntimeUnavailable
from pi_axera_sd.runtime.base import Session, load_failure
from pi_axera_sd.runtime.options import RuntimeOptions
from pi_axera_sd.runtime.ovcache import cache_dir_for
from pi_axera_sd.runtime.ovmemory import release_mapped_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Port:
    name: str
    shape: list
    dtype: np.dtype


def _port_name(port) -> str:
    """The ONNX name of a compiled model's port. Compiling may add aliases, the names of internal
    tensors folded into it (``/text_encoder/Reshape_output_0``), which start with ``/``."""
    names = sorted(port.get_names())
    plain = [n for n in names if not n.startswith("/")]
    return (plain or names or [port.get_any_name()])[0]


def _ports(ports) -> list[_Port]:
    found = []
    for port in ports:
        pshape = port.get_partial_shape()
        shape = [d.get_length() if d.is_static else None for d in pshape] if pshape.rank.is_static else []
        found.append(_Port(_port_name(port), shape, port.get_element_type().to_dtype()))
    return found


class _OpenVinoInner:
    def __init__(self, compiled) -> None:
        self._inputs = _ports(compiled.inputs)
        self._outputs = _ports(compiled.outputs)
        self._request = compiled.create_infer_request()
        self.from_cache = False  # whether OpenVINO imported a compiled blob instead of compiling

    def get_inputs(self) -> list[_Port]:
        return self._inputs

    def get_outputs(self) -> list[_Port]:
        return self._outputs

    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        feed = {i: input_feed[spec.name] for i, spec in enumerate(self._inputs)}
        self._request.infer(feed)
        wanted = output_names or [o.name for o in self._outputs]
        index = {o.name: i for i, o in enumerate(self._outputs)}
        # copy: the request reuses its output buffers on the next call
        return [np.array(self._request.get_output_tensor(index[name]).data) for name in wanted]


def open_openvino(path: Path, options: RuntimeOptions) -> Session:
    try:
        import openvino as ov
    except ImportError as exc:
        raise RuntimeUnavailable("OpenVINO is not installed: pip install 'pi-axera-sd[openvino]'") from exc
    core = ov.Core()
    config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
    if options.threads:
        config["INFERENCE_NUM_THREADS"] = options.threads
    if options.precision:
        config["INFERENCE_PRECISION_HINT"] = options.precision
    if options.cache_dir is not None and (folder := cache_dir_for(options.cache_dir, path)) is not None:
        config["CACHE_DIR"] = str(folder)
    try:
        # From the path, not a read ov.Model: with a cache hit OpenVINO then skips reading the
        # source model entirely, and no second copy of the weights lives on the Python side.
        started = time.perf_counter()
        compiled = core.compile_model(str(path), "CPU", config)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with the reason
        raise load_failure(path, "OpenVINO", exc) from exc
    # The compiled model holds its own repacked weights; the source file's (or cached blob's) pages
    # it read stay mapped and would count twice in the resident size (see runtime/ovmemory.py).
    mapped = [path.parent] + ([Path(str(config["CACHE_DIR"]))] if "CACHE_DIR" in config else [])
    released = release_mapped_files(mapped) if options.release_mapped else 0
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # e.g. "f32", "bf16"
    inner = _OpenVinoInner(compiled)
    inner.from_cache = "CACHE_DIR" in config and bool(compiled.get_property("LOADED_FROM_CACHE"))
    log.info(
        "OpenVINO model ready",
        extra={
            "fields": {
                "model": str(path),
                "from_cache": inner.from_cache,
                "load_s": round(time.perf_counter() - started, 3),
                "cache_dir": config.get("CACHE_DIR"),
                "released_mapped_mb": released // 2**20,
            }
        },
    )
    return Session(inner, path, runtime="openvino", provider=f"CPU/{precision}")
