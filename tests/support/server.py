"""Helpers shared by the server tests (this module holds no tests of its own).

* :class:`ServeProcess`: the real ``pi-axera-sd serve`` in a subprocess on a loopback port, with
  its JSON log lines collected as they arrive.
* :func:`running_server`: the same app under the same uvicorn runner, in a thread of the test
  process, so a test can hold the lane (:class:`GatedPipeline`) and look at its state.
* :class:`GatedPipeline` and :class:`FailingInner`: test doubles around a *real* tiny pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pi_axera_sd.config import Settings
from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import Pipeline
from pi_axera_sd.loadtest import instances
from pi_axera_sd.loadtest.instances import free_port

SEED_PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
READY_TIMEOUT_S = 60.0


def wait_ready(base_url: str, timeout: float = READY_TIMEOUT_S, proc: subprocess.Popen | None = None) -> None:
    """Poll /ready (bounded) until the models are loaded (the load test's own wait)."""
    instances.wait_ready(base_url, timeout, proc)


class LogLines:
    """JSON lines read from a stream by a thread; tests wait on them instead of sleeping."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in iter(stream.readline, ""):
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def records(self) -> list[dict[str, Any]]:
        with self._cond:
            return self.records_locked()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for record in self.records_locked():
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no matching log line; got:\n" + "\n".join(self.lines[-20:]))
                self._cond.wait(remaining)

    def records_locked(self) -> list[dict[str, Any]]:
        out = []
        for line in self.lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    out.append(record)
        return out

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


class ServeProcess:
    """A server subprocess: ``pi-axera-sd serve`` by default, or any command (a harness script)."""

    def __init__(self, env: dict[str, str], command: list[str] | None = None, *, stdin: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = instances.launch_serve(
            self.port,
            env,
            command or (),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log = LogLines(self.proc.stderr)
        self.out = LogLines(self.proc.stdout)

    def wait_ready(
        self, timeout: float = READY_TIMEOUT_S, headers: dict[str, str] | None = None
    ) -> ServeProcess:
        """Poll /ready (bounded; ``headers``: credentials where /ready is behind auth)."""
        try:
            instances.wait_ready(self.url, timeout, self.proc, headers=headers)
        except instances.InstanceError as exc:
            raise AssertionError(f"{exc}\n{self.log.text()[-2000:]}") from exc
        return self

    def stop(self) -> None:
        instances.stop_process(self.proc, grace_s=20)


@contextlib.contextmanager
def tiny_server(
    models_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    headers: dict[str, str] | None = None,
    **env: str,
) -> Iterator[ServeProcess]:
    """``pi-axera-sd serve`` on ``models_dir``, saving into a fresh ``output_dir``, without CLIP or
    auth unless ``env`` (settings' variables) says otherwise; ready, and stopped on the way out."""
    out = tmp_path_factory.mktemp("saved")
    base = {
        "MODELS_DIR": str(models_dir),
        "OUTPUT_DIR": str(out),
        "PI_AXERA_SD_CLIP_DIR": str(tmp_path_factory.mktemp("no-clip")),
        "PI_AXERA_SD_API_AUTH": "",
        "PI_AXERA_SD_API_TOKEN": "",
    }
    proc = ServeProcess({**base, **env})
    try:
        proc.wait_ready(timeout=120, headers=headers)
        proc.output_dir = out
        yield proc
    finally:
        proc.stop()


# ---- in-process servers ------------------------------------------------------------------------


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    """Serve ``app`` with the service's uvicorn runner on a free loopback port, in a thread."""
    from pi_axera_sd.server.core.runner import build_server

    server = build_server(app, app.state.service.settings, port=0)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    if not server.started_event.wait(30):
        raise AssertionError("server did not start")
    url = f"http://127.0.0.1:{server.port}"
    service = app.state.service
    service.lane.wait_until(lambda s: s.state != "starting", READY_TIMEOUT_S)
    if not service.ready()[0]:
        raise AssertionError(f"service not ready: {service.ready()[1]}")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def make_settings(models_dir: Path, **overrides: Any) -> Settings:
    """Settings that never read this machine's environment for what the tests control."""
    base = {
        "models_dir": models_dir,
        "clip_dir": models_dir / "no-clip-here",
        "shutdown_grace_s": 5.0,
        "api_auth": None,
        "api_token": None,
        "save_images": False,
    }
    base.update(overrides)
    return Settings(**base)


def load_tiny(models_dir: Path) -> Pipeline:
    """A private pipeline (the session-wide ``tiny_engine`` must not be wrapped or broken)."""
    return Pipeline.load(resolve_layout(models_dir))


class GatedPipeline:
    """A real pipeline whose jobs can be held at their first step boundary.

    ``hold(n)`` makes the n-th ``generate`` call from now wait at its first step callback until
    ``release()``; ``started`` lists the prompts whose generation began (to prove a job never ran).
    """

    def __init__(self, inner: Pipeline) -> None:
        self._inner = inner
        self.started: list[str] = []
        self.threads: set[str] = set()
        self._calls = 0
        self._hold_at: int | None = None
        self._gate = threading.Event()
        self.held = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def hold(self, nth_call_from_now: int = 1) -> None:
        self._gate.clear()
        self.held.clear()
        self._hold_at = self._calls + nth_call_from_now

    def release(self) -> None:
        self._hold_at = None
        self._gate.set()

    def generate(self, params, *, noise=None, on_step=None, **hooks):
        self._calls += 1
        call = self._calls
        self.started.append(params.prompt)
        self.threads.add(threading.current_thread().name)

        def step(done: int, total: int) -> None:
            if on_step is not None:
                on_step(done, total)  # progress is reported (and interrupts seen) before holding
            if done == 0 and call == self._hold_at:
                self.held.set()
                if not self._gate.wait(30):
                    raise AssertionError("gate never released")

        return self._inner.generate(params, noise=noise, on_step=step, **hooks)


class FailingInner:
    """Stands in for the runtime's own session object (ONNX Runtime / pyaxengine) under a real
    :class:`~pi_axera_sd.runtime.Session`: ``run`` raises the way a failing NPU driver does."""

    def __init__(self, inner: Any, *, failures: int | None = None) -> None:
        self._inner = inner
        self.remaining = failures  # None: fail forever
        self.calls = 0

    def get_inputs(self):
        return self._inner.get_inputs()

    def get_outputs(self):
        return self._inner.get_outputs()

    def run(self, output_names, input_feed):
        self.calls += 1
        if self.remaining is None or self.remaining > 0:
            if self.remaining is not None:
                self.remaining -= 1
            raise RuntimeError("npu driver error: AX_ENGINE_RunSync returned -5 (device hang)")
        return self._inner.run(output_names, input_feed)
