"""systemd's readiness protocol (sd_notify(3)): one datagram to ``$NOTIFY_SOCKET``. The unit is
``Type=notify``, so systemd counts the service started only once the models are loaded.
Without ``NOTIFY_SOCKET`` (not under systemd) it does nothing."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``, ``STOPPING=1``); True when it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract socket namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not notify systemd", extra={"fields": {"state": state, "error": str(exc)}})
        return False
    return True
