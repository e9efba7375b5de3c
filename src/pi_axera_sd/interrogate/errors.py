"""Errors of interrogation that the HTTP layer needs to tell apart."""

from __future__ import annotations

from pi_axera_sd.errors import PiAxeraError
from pi_axera_sd.interrogate.protocol import WarmupState


class WarmingUp(PiAxeraError):
    """Flat interrogation was asked for before the taxonomy embeddings are ready. HTTP 503, with
    ``state`` giving the progress (and a Retry-After if the service likes)."""

    def __init__(self, state: WarmupState) -> None:
        super().__init__(state.message)
        self.state = state
