"""Axera AX650N sessions through pyaxengine (``import axengine``), for ``.axmodel`` files.

pyaxengine mirrors ONNX Runtime's API, so the returned :class:`Session` is the same wrapper the
ONNX Runtime path uses; only the import and the provider choice live here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pi_axera_sd.errors import ModelError, RuntimeUnavailable
from pi_axera_sd.runtime.base import Session
from pi_axera_sd.runtime.options import AX_PROVIDERS, RuntimeOptions

INSTALL_HINT = (
    "Install AXERA's pyaxengine wheel (package 'axengine', from the releases of "
    "github.com/AXERA-TECH/pyaxengine: pip install axengine-<version>-py3-none-any.whl) "
    "and the AX650N driver (BSP on a board, the AXCL driver for an M.2 card)."
)


def _import_axengine():
    try:
        return importlib.import_module("axengine")
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"pyaxengine is not installed, needed for .axmodel files. {INSTALL_HINT}"
        ) from exc


def axengine_available() -> bool:
    try:
        _import_axengine()
    except RuntimeUnavailable:
        return False
    return True


def choose_provider(requested: str | None, available: list[str]) -> str:
    usable = [p for p in available if p in AX_PROVIDERS]
    if requested is not None:
        if requested not in available:
            raise RuntimeUnavailable(
                f"pyaxengine provider {requested} is not available (available: {available}). {INSTALL_HINT}"
            )
        return requested
    if not usable:
        raise RuntimeUnavailable(
            f"pyaxengine found no AX650N device (providers: {available}); is the driver loaded? "
            f"{INSTALL_HINT}"
        )
    return usable[0]


def open_axengine(path: Path, options: RuntimeOptions) -> Session:
    axengine = _import_axengine()
    provider = choose_provider(options.ax_provider, list(axengine.get_available_providers()))
    try:
        inner = axengine.InferenceSession(str(path), providers=[provider])
    except Exception as exc:  # driver errors such as axclrtEngineLoadFromFile failed
        raise ModelError(f"{path}: pyaxengine could not load the model with {provider}: {exc}") from exc
    return Session(inner, path, runtime="axengine", provider=provider)
