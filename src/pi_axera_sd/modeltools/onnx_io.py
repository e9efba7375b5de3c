"""Shared helpers for writing ONNX files from torch modules (export extra only)."""

from __future__ import annotations

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
    dynamic_axes: dict | None = None,
) -> Path:
    """Trace ``module`` to ONNX at ``path``, written via a temporary file so a failed export
    never leaves a half-written model behind.

    The TorchScript exporter is used on purpose: it names tensors by module path
    (``/down_blocks.0/resnets.0/...``), which is what AXERA's Pulsar2 configs refer to. With
    ``external_data`` all weights go to one ``<name>.data`` file beside the graph (needed past 2 GB).
    """
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
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        for stale in (path, path.with_name(path.name + ".data")):
            stale.unlink(missing_ok=True)
        if external_data:
            import onnx

            model = onnx.load(str(staged), load_external_data=True)
            onnx.save_model(
                model,
                str(path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=path.name + ".data",
                size_threshold=1024,
            )
        else:
            staged.replace(path)
    for written in (path, path.with_name(path.name + ".data")):
        if written.exists():
            written.chmod(0o644)  # onnx writes external data 0600; a service user must read it
    return path
