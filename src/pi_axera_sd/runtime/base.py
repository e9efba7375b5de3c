"""The one session interface every runtime satisfies.

ONNX Runtime and pyaxengine both expose ``get_inputs()``, ``get_outputs()`` and
``run(output_names, feed)``. :class:`Session` wraps any such object, so the code that
casts dtypes, checks names and picks outputs is the same for the CPU, the GPU and the NPU;
only the import that creates the inner session differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pi_axera_sd.errors import ModelError

_REASON_CHARS = 160
# OpenVINO prefixes the reason with where in its sources it was raised: not the user's business
_SOURCE_LOCATION = re.compile(r"^(Exception from |Check '.*' failed at )")

# ONNX Runtime reports element types as strings such as "tensor(float)".
_ORT_TYPE_STRINGS: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}


def to_numpy_dtype(value: Any) -> np.dtype:
    """Normalise a runtime's dtype description (string, numpy dtype or type) to a numpy dtype."""
    if isinstance(value, str):
        if value in _ORT_TYPE_STRINGS:
            return _ORT_TYPE_STRINGS[value]
        if value == "tensor(bfloat16)":
            import ml_dtypes  # shipped with onnx/pyaxengine; only needed for bf16 graphs

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(value)
    return np.dtype(value)


Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (ints, or names/None for dynamic axes) and numpy dtype of a graph tensor."""

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype

    def fixed_shape(self, **dynamic: int) -> tuple[int, ...]:
        """The shape with dynamic axes replaced: named ones from ``dynamic``, others by 1."""
        dims = []
        for dim in self.shape:
            if isinstance(dim, int) and dim >= 0:
                dims.append(dim)
            elif isinstance(dim, str) and dim in dynamic:
                dims.append(dynamic[dim])
            else:
                dims.append(1)
        return tuple(dims)

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {self.dtype.name}"


class InnerSession(Protocol):
    """What ONNX Runtime's and pyaxengine's InferenceSession have in common."""

    def get_inputs(self) -> Sequence[Any]: ...
    def get_outputs(self) -> Sequence[Any]: ...
    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list: ...


def _specs(nodes: Sequence[Any]) -> tuple[TensorSpec, ...]:
    specs = []
    for node in nodes:
        shape = tuple(d if isinstance(d, int | str) or d is None else int(d) for d in (node.shape or ()))
        specs.append(TensorSpec(name=node.name, shape=shape, dtype=to_numpy_dtype(node.type_or_dtype)))
    return tuple(specs)


class _NodeView:
    """Adapts ORT's NodeArg (``.type``) and pyaxengine's (``.dtype``) to one attribute."""

    def __init__(self, node: Any) -> None:
        self.name = node.name
        self.shape = list(node.shape) if node.shape is not None else []
        self.type_or_dtype = getattr(node, "type", None) or node.dtype


class Session:
    """A loaded model graph: named, typed inputs and outputs, and ``run``.

    Feeds are cast to the dtype each input declares (the NPU's text encoder takes int32
    ``input_ids`` where the ONNX graph takes int64), and missing or unknown inputs are
    reported with the file name, so a mismatched model fails with a readable message.
    """

    def __init__(self, inner: InnerSession, path: Path, runtime: str, provider: str) -> None:
        self.inner = inner
        self.path = Path(path)
        self.runtime = runtime
        self.provider = provider
        self.inputs = _specs([_NodeView(n) for n in inner.get_inputs()])
        self.outputs = _specs([_NodeView(n) for n in inner.get_outputs()])

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise ModelError(f"{self.path}: no input named {name!r}; inputs are {list(self.input_names)}")

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """Run the graph; returns the requested outputs (all by default) as numpy arrays."""
        expected = set(self.input_names)
        given = set(feeds)
        if given != expected:
            missing = sorted(expected - given)
            extra = sorted(given - expected)
            raise ModelError(
                f"{self.path}: feed does not match the graph inputs (missing {missing}, unexpected {extra})"
            )
        cast = {
            spec.name: np.ascontiguousarray(np.asarray(feeds[spec.name]), dtype=spec.dtype)
            for spec in self.inputs
        }
        results = self.inner.run(list(outputs) if outputs is not None else None, cast)
        return [np.asarray(r) for r in results]

    def describe(self) -> str:
        ins = "; ".join(s.describe() for s in self.inputs)
        outs = "; ".join(s.describe() for s in self.outputs)
        return f"{self.path.name} ({self.runtime}/{self.provider}) in: {ins} | out: {outs}"


def load_failure(path: Path, runtime: str, exc: BaseException) -> ModelError:
    """A model file a runtime cannot load (truncated, not a model, an unsupported op), as one line:
    the file, the runtime's reason without its source locations, and how to check the whole folder.
    The runtime's full text stays on the exception's cause (logged at DEBUG)."""
    from pi_axera_sd.printed_commands import command

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = " ".join(line for line in lines if not _SOURCE_LOCATION.match(line)) or type(exc).__name__
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 3] + "..."
    verify = command("models", "verify", path.parent)
    return ModelError(f"{path}: {runtime} could not load the model ({reason}); check the folder: {verify}")
