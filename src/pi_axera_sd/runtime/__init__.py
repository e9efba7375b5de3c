"""Runtimes behind one session interface: ONNX Runtime, pyaxengine (AX650N NPU), OpenVINO."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pi_axera_sd.errors import ModelError
from pi_axera_sd.runtime.base import Session, TensorSpec
from pi_axera_sd.runtime.options import RuntimeOptions

__all__ = ["RuntimeOptions", "Session", "TensorSpec", "open_session", "open_sessions", "runtime_for"]


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


def open_sessions(
    paths: Mapping[str, Path | None], options: RuntimeOptions | None = None
) -> dict[str, Session | None]:
    """Open several model files (``None`` stays ``None``). On a machine with 4 or more cores the CPU
    runtimes compile or import them in parallel threads (they release the GIL while doing so; a start
    is otherwise the sum of five imports). NPU models open one after another, as the device's runtime
    expects. A failure raises the first failing file's error, in the order of ``paths``."""
    options = options or RuntimeOptions()
    wanted = {name: Path(path) for name, path in paths.items() if path is not None}
    serial = any(runtime_for(path, options) == "axengine" for path in wanted.values())
    # Half the cores: a warm import is CPU-bound (OpenVINO repacks the weights), so on 2 cores two at
    # once took as long as one after another (5.3-5.6 s) and peaked 0.2 GB higher; only the cold,
    # compiling start gained (14.3 -> 10.5 s). With spare cores the imports overlap for real.
    workers = 1 if serial else min(len(wanted), (os.cpu_count() or 1) // 2)
    if workers <= 1:  # in order, stopping at the first failure (each NPU open counts on the device)
        opened = {name: open_session(path, options) for name, path in wanted.items()}
        return {name: opened.get(name) for name in paths}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="open-model") as pool:
        futures = {name: pool.submit(open_session, path, options) for name, path in wanted.items()}
        try:
            opened = {name: future.result() for name, future in futures.items()}
        except BaseException:
            pool.shutdown(cancel_futures=True)  # models not started yet are not opened at all
            raise
    return {name: opened.get(name) for name in paths}
