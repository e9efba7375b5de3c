"""The ways an NPU can be unusable, told apart so each gets its own message and exit code.

pyaxengine 0.1.3 fails in these distinct ways before any inference (read from the public wheel):

* ``import axengine`` raises ``ModuleNotFoundError``: the wheel is not installed;
* ``import axengine`` raises ``ImportError("No providers found...")``: the wheel is installed but no
  driver library (AXCL runtime for an M.2 card, the BSP's libax_engine on a board) was found;
* session creation raises ``RuntimeError("Failed to initialize axcl runtime. ...")``,
  ``"Get AXCL device failed ..., find total 0 device."`` or ``"Failed to initialize ax sys."``:
  the library is there but no device is up yet (the driver is still loading at boot, or the card
  is absent);
* any other session-creation error (``axclrtEngineLoadFromFile failed``...): the card is up but
  will not load this file (not compiled for it, corrupt, or its memory taken by other instances).

Only "not ready yet" may fix itself: the service waits for it, then exits with the restartable
code 75. The others are configuration or install faults: exit 2, which systemd does not restart.
"""

from __future__ import annotations

from pi_axera_sd import exitcodes
from pi_axera_sd.errors import ModelError, PiAxeraError, RuntimeUnavailable

# Substrings of the wheel's RuntimeError messages that mean "the device is not up (yet)". They are
# the strings in pyaxengine 0.1.3's source, not observed on hardware: another driver version may
# word them differently, and an unrecognised session error counts as a refused model (exit 2).
_NOT_READY_MARKERS = (
    "failed to initialize axcl runtime",
    "get axcl device failed",
    "find total 0 device",
    "failed to initialize ax sys",
)


class AxengineMissing(RuntimeUnavailable):
    """The pyaxengine wheel is not installed (or is broken: its own imports fail)."""

    exit_code = exitcodes.CONFIG


class DriverMissing(RuntimeUnavailable):
    """pyaxengine imports nothing usable: no AXCL / AX650N driver library on this host."""

    exit_code = exitcodes.CONFIG


class NpuNotReady(RuntimeUnavailable):
    """The driver library is present but no device answers yet; may fix itself (boot order)."""

    exit_code = exitcodes.NOT_READY


class ModelIncompatible(ModelError):
    """The device is up but refuses this model file."""

    exit_code = exitcodes.CONFIG


def is_not_ready_message(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _NOT_READY_MARKERS)


def exit_code_for(error: BaseException | None) -> int:
    """The process exit code for a failure to load the models."""
    code = getattr(error, "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(error, RuntimeUnavailable):
        return exitcodes.RUNTIME  # e.g. a runtime package that a restart after an install may find
    if isinstance(error, PiAxeraError):
        return exitcodes.CONFIG
    return exitcodes.RUNTIME


def fault_kind(error: BaseException | None) -> str:
    """A short label for logs, metrics and /ready."""
    names = {
        AxengineMissing: "wheel_missing",
        DriverMissing: "driver_missing",
        NpuNotReady: "not_ready",
        ModelIncompatible: "model_incompatible",
    }
    for cls, name in names.items():
        if isinstance(error, cls):
            return name
    return "model" if isinstance(error, ModelError) else "runtime"
