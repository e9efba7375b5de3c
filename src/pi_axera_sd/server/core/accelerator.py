"""The accelerator's state as the service sees it, and the start-up wait for an NPU that is not
up yet (a unit started at boot can run before the AXCL driver has found the card)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pi_axera_sd.runtime.faults import NpuNotReady

T = TypeVar("T")
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


@dataclass
class AcceleratorStatus:
    """What ``/ready`` and ``/health`` report: loading, waiting (for the NPU), ready, reopening
    (after repeated runtime failures) or failed, with the last fault."""

    device: int | None = None
    state: str = "loading"
    fault: str | None = None
    detail: str | None = None
    load_attempts: int = 0
    reopens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, state: str, fault: str | None = None, detail: str | None = None) -> None:
        with self._lock:
            self.state, self.fault, self.detail = state, fault, detail

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": self.state,
                "fault": self.fault,
                "detail": self.detail,
                "device": self.device,
                "load_attempts": self.load_attempts,
                "reopens": self.reopens,
            }


def load_with_retry(
    load: Callable[[], T],
    wait_s: float,
    on_wait: Callable[[NpuNotReady, int, float], None],
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``load()``, retried with exponential backoff (0.5 s doubling to 10 s) while it raises
    :class:`NpuNotReady`, for at most ``wait_s`` seconds; then that error, saying how long it waited.
    ``stop`` (set on SIGTERM) ends the wait at once."""
    deadline = clock() + wait_s
    delay = FIRST_DELAY_S
    attempt = 0
    while True:
        attempt += 1
        try:
            return load()
        except NpuNotReady as exc:
            left = deadline - clock()
            if left <= 0 or stop.is_set():
                raise NpuNotReady(
                    f"{exc}; still not ready after {attempt} attempts over {wait_s:g} s (npu_wait_s)"
                ) from exc
            pause = min(delay, left)
            on_wait(exc, attempt, pause)
            stop.wait(pause)
            delay = min(delay * 2, MAX_DELAY_S)
