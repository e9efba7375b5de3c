"""Axera AX650N sessions through pyaxengine (``import axengine``), for ``.axmodel`` files.

pyaxengine mirrors ONNX Runtime's API, so the returned :class:`Session` is the same wrapper the
ONNX Runtime path uses. What differs, per the public pyaxengine 0.1.3 wheel:

* an M.2 card is chosen only by ``provider_options=[{"device_id": N}]`` at the top level (the
  ``providers=[(name, options)]`` tuple form is accepted and silently ignored);
* ``run`` returns every output in the model's order, whatever order was asked for, and rejects a
  wrong shape or dtype with a bare ``AssertionError``;
* its import and session-creation failures tell "not installed", "no driver", "device not up yet"
  and "model refused" apart (see :mod:`pi_axera_sd.runtime.faults`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pi_axera_sd.defaults import AX_PROVIDERS
from pi_axera_sd.errors import ModelError, RuntimeUnavailable
from pi_axera_sd.runtime.base import Session
from pi_axera_sd.runtime.faults import (
    AxengineMissing,
    DriverMissing,
    ModelIncompatible,
    NpuNotReady,
    is_not_ready_message,
)
from pi_axera_sd.runtime.options import RuntimeOptions

log = logging.getLogger(__name__)

M2_PROVIDER = "AXCLRTExecutionProvider"
INSTALL_HINT = (
    "Install AXERA's pyaxengine wheel (package 'axengine', from the releases of "
    "github.com/AXERA-TECH/pyaxengine: pip install axengine-<version>-py3-none-any.whl) "
    "and the AX650N driver (BSP on a board, the AXCL driver for an M.2 card)."
)
DRIVER_HINT = (
    "Install the AX650N driver: the AXCL runtime for an M.2 card (libaxcl_rt, from AXERA's AXCL "
    "package) or the BSP on an AX650N board; 'axcl-smi' should list the card."
)


def import_axengine():
    """The ``axengine`` module; a missing wheel or driver library raises its own fault class."""
    try:
        return importlib.import_module("axengine")
    except ModuleNotFoundError as exc:
        if exc.name not in (None, "axengine"):  # the wheel is there but one of its deps is not
            raise AxengineMissing(
                f"pyaxengine is installed but cannot import {exc.name!r}: {exc}. {INSTALL_HINT}"
            ) from exc
        raise AxengineMissing(
            f"pyaxengine is not installed, needed for .axmodel files. {INSTALL_HINT}"
        ) from exc
    except ImportError as exc:
        # The wheel raises ImportError("No providers found") from its __init__ when neither the
        # AXCL runtime nor the board's engine library can be loaded.
        raise DriverMissing(
            f"pyaxengine is installed but found no NPU driver library ({exc}). {DRIVER_HINT}"
        ) from exc


def axengine_available() -> bool:
    """pyaxengine imports and offers an AX650N provider (a driver library is installed).

    Whether a device is up is only known once a session is opened; the service waits for that
    (see ``npu_wait_s``) rather than falling back to a CPU ~100x slower on a Pi.
    """
    try:
        module = import_axengine()
    except RuntimeUnavailable:
        return False
    try:
        return any(p in AX_PROVIDERS for p in module.get_available_providers())
    except Exception:  # a partial install; the session would fail the same way
        return False


def choose_provider(requested: str | None, available: list[str]) -> str:
    usable = [p for p in available if p in AX_PROVIDERS]
    if requested is not None:
        if requested not in available:  # that provider's driver library is not on this host
            raise DriverMissing(
                f"pyaxengine provider {requested} is not available (available: {available}). {DRIVER_HINT}"
            )
        return requested
    if not usable:
        raise DriverMissing(
            f"pyaxengine found no AX650N device (providers: {available}); is the driver loaded? {DRIVER_HINT}"
        )
    return usable[0]


class _WheelAdapter:
    """Presents pyaxengine's session as ONNX Runtime's: outputs in the requested order, and its
    bare ``AssertionError`` / ``ValueError`` on a bad feed turned into a :class:`ModelError`."""

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner = inner
        self.path = path

    def get_inputs(self) -> Sequence[Any]:
        return self.inner.get_inputs()

    def get_outputs(self) -> Sequence[Any]:
        return self.inner.get_outputs()

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list:
        try:
            results = self.inner.run(None, dict(input_feed))
        except (AssertionError, ValueError) as exc:
            given = {k: f"{list(v.shape)} {v.dtype}" for k, v in input_feed.items()}
            declared = {n.name: f"{list(n.shape)} {np.dtype(n.dtype)}" for n in self.inner.get_inputs()}
            raise ModelError(
                f"{self.path}: pyaxengine rejected the feed ({type(exc).__name__}: {exc}); "
                f"given {given}, the model declares {declared}"
            ) from exc
        if output_names is None:
            return list(results)
        order = [n.name for n in self.inner.get_outputs()]
        by_name = dict(zip(order, results, strict=False))
        return [by_name[name] for name in output_names]


def open_axengine(path: Path, options: RuntimeOptions) -> Session:
    axengine = import_axengine()
    provider = choose_provider(options.ax_provider, list(axengine.get_available_providers()))
    kwargs: dict[str, Any] = {"providers": [provider]}
    if options.npu_device is not None:
        if provider == M2_PROVIDER:
            kwargs["provider_options"] = [{"device_id": options.npu_device}]
        else:
            log.warning(
                "the on-board NPU has no device choice; npu_device=%s ignored with %s",
                options.npu_device,
                provider,
            )
    try:
        inner = axengine.InferenceSession(str(path), **kwargs)
    except Exception as exc:
        device = f" device {options.npu_device}" if "provider_options" in kwargs else ""
        if is_not_ready_message(str(exc)):
            raise NpuNotReady(
                f"the NPU{device} is not ready ({provider}: {exc}); the driver may still be starting, "
                "or the card is absent ('axcl-smi' lists the cards)"
            ) from exc
        raise ModelIncompatible(
            f"{path}: the NPU{device} refused the model with {provider}: {exc} (a file not compiled "
            "for the AX650N, a damaged download, or the card's memory taken by other instances)"
        ) from exc
    return Session(_WheelAdapter(inner, path), path, runtime="axengine", provider=provider)
