"""Service instances the load test starts itself: ``pi-axera-sd serve`` on free loopback ports,
all on the same models (and so, on an AX650N, the same NPU: the original service's experiment)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pi_axera_sd.deploy.systemd import installed_command
from pi_axera_sd.errors import PiAxeraError


class InstanceError(PiAxeraError):
    """An instance exited or never became ready."""


@dataclass
class Instance:
    url: str
    proc: subprocess.Popen
    log_path: Path


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_serve(
    port: int, env: Mapping[str, str], command: Sequence[str] = (), **popen: Any
) -> subprocess.Popen:
    """``pi-axera-sd serve`` (the installed script, or ``command``) on 127.0.0.1:``port``, with
    ``env`` over this process's environment; ``popen`` says where its streams go."""
    full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **env}
    return subprocess.Popen(list(command) or [*installed_command(), "serve"], env=full_env, **popen)


def wait_ready(
    url: str,
    timeout_s: float,
    proc: subprocess.Popen | None = None,
    where: str = "",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Poll ``url``/ready (bounded; ``headers``: credentials where it is behind auth) until it
    answers 200; raise if ``proc`` exits first. ``where`` (e.g. the log's path) is added to the error."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InstanceError(f"instance {url} exited with {proc.returncode} before it was ready{where}")
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.get(url + "/ready", headers=headers, timeout=2.0)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text}"
        time.sleep(0.1)
    raise InstanceError(f"instance {url} not ready after {timeout_s:.0f}s{where}; last answer: {last}")


def stop_process(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM (the service drains), then SIGKILL after ``grace_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def started(
    count: int, models_dir: Path, log_dir: Path, env: dict[str, str], ready_timeout_s: float = 300.0
) -> Iterator[list[Instance]]:
    """``count`` instances, ready; stopped (SIGTERM, then SIGKILL after 30 s) on the way out."""
    log_dir.mkdir(parents=True, exist_ok=True)
    instances: list[Instance] = []
    try:
        for i in range(count):
            port = free_port()
            log_path = log_dir / f"instance-{count}-{i}.log"
            with log_path.open("w") as log:
                proc = launch_serve(
                    port,
                    {"MODELS_DIR": str(models_dir), **env},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            instances.append(Instance(f"http://127.0.0.1:{port}", proc, log_path))
        for instance in instances:
            wait_ready(instance.url, ready_timeout_s, instance.proc, f" (log: {instance.log_path})")
        yield instances
    finally:
        for instance in instances:
            stop_process(instance.proc)
