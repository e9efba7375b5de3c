"""Running the app under uvicorn with the service's stop semantics.

SIGTERM/SIGINT: with ``drain_s`` set, first report not ready for that long while still taking
work (a load balancer's health check moves traffic away); then stop accepting connections, answer
queued jobs 503, let the running job finish (bounded by ``shutdown_grace_s``), exit 0. uvicorn
itself re-raises the signal after a graceful stop, which would end the process "killed by
SIGTERM"; this server does not.
A fatal runtime failure stops the server the same way and exits with the service's code (3).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from pi_axera_sd.config import Settings
from pi_axera_sd.server.core.service import Service

log = logging.getLogger(__name__)
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ServiceServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service
        self.started_event = threading.Event()
        self.drain_s = service.settings.drain_s
        self._drain_until: float | None = None
        self._drain_logged = False
        service.on_exit_request(self.request_exit)

    def request_exit(self) -> None:
        self.should_exit = True  # polled by uvicorn's main loop every 0.1 s

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        # Flags only: this runs between bytecodes of the event loop thread, which may hold locks.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        if self.drain_s > 0 and self._drain_until is None and not self.should_exit:
            self._drain_until = time.monotonic() + self.drain_s
            self.service.draining = True
            return
        self.should_exit = True  # a second signal ends the drain early

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and not self._drain_logged:
            self._drain_logged = True  # logged here: the signal handler only sets flags
            log.info("draining: not ready, still taking work", extra={"fields": {"drain_s": self.drain_s}})
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.started_event.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        log.info("shutting down: finishing the running job, refusing queued ones")
        self.service.begin_stop()
        await super().shutdown(sockets)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self.servers[0].sockets[0].getsockname()[1]


def build_server(app: FastAPI, settings: Settings, *, port: int | None = None) -> ServiceServer:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        log_config=None,  # our JSON logging (server.logs) is already configured
        access_log=False,  # the access middleware writes one richer line per request
        lifespan="on",
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return ServiceServer(config, app.state.service)


def run(app: FastAPI, settings: Settings) -> int:
    """Serve until stopped; the process exit code (0 after a clean stop).

    With ``listen_after_load`` the models load first and the port opens only once they are ready
    (the original service's behaviour, for clients that take "the port answers" as ready); a load
    that fails exits without ever listening. SIGTERM during that load ends it at once.
    """
    server = build_server(app, settings)
    if settings.listen_after_load and not _load_before_listening(server.service):
        server.service.stop(settings.shutdown_grace_s)
        return server.service.exit_code
    server.run()
    return server.service.exit_code


def _load_before_listening(service: Service) -> bool:
    """Load the models with no port open; False when loading failed or a signal asked to stop."""
    stop = threading.Event()
    on_main = threading.current_thread() is threading.main_thread()
    # Flags only in the handler; the wait below acts on them.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _SIGNALS} if on_main else {}
    try:
        service.start()
        while not service.lane.wait_until(lambda st: st.state != "starting", 0.2):
            if stop.is_set():
                service.begin_stop()  # also ends a wait for the NPU
                return False
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return not stop.is_set() and service.fatal_reason is None and service.pipeline is not None
