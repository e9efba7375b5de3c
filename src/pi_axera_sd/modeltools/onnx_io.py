"""Shared helpers for writing ONNX files from torch modules (export extra only)."""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

OPSET = 17


def export_module(
    module,
    args: tuple,
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    *,
    external_data: bool = False,
) -> Path:
    """Trace ``module`` to ONNX at ``path``.

    The TorchScript exporter is used on purpose: it names tensors by module path
    (``/down_blocks.0/resnets.0/...``), which is what AXERA's Pulsar2 configs refer to. Large
    graphs are rewritten with all weights in one ``<name>.data`` file beside the graph.
    """
    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is deprecated
        staged = Path(tmp) / path.name
        with torch.no_grad():
            torch.onnx.export(
                module,
                args,
                str(staged),
                input_names=list(input_names),
                output_names=list(output_names),
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        model = onnx.load(str(staged), load_external_data=True)
        for stale in (path, path.with_name(path.name + ".data")):
            stale.unlink(missing_ok=True)
        if external_data:
            onnx.save_model(
                model,
                str(path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=path.name + ".data",
                size_threshold=1024,
            )
        else:
            onnx.save_model(model, str(path))
    for written in (path, path.with_name(path.name + ".data")):
        if written.exists():
            written.chmod(0o644)  # onnx writes external data 0600; a service user must read it
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
