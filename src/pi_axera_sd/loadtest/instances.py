"""Service instances the load test starts itself: ``pi-axera-sd serve`` on free loopback ports,
all on the same models (and so, on an AX650N, the same NPU: the seed's experiment)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


def _wait_ready(instance: Instance, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if instance.proc.poll() is not None:
            raise InstanceError(
                f"instance {instance.url} exited with {instance.proc.returncode} before it was ready "
                f"(log: {instance.log_path})"
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(instance.url + "/ready", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise InstanceError(
        f"instance {instance.url} not ready after {timeout_s:.0f}s (log: {instance.log_path})"
    )


def _stop(instance: Instance) -> None:
    if instance.proc.poll() is None:
        instance.proc.terminate()
        try:
            instance.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            instance.proc.kill()
            instance.proc.wait()


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
            full_env = {
                **os.environ,
                "MODELS_DIR": str(models_dir),
                "HOST": "127.0.0.1",
                "PORT": str(port),
                **env,
            }
            with log_path.open("w") as log:
                proc = subprocess.Popen(
                    [*installed_command(), "serve"],
                    env=full_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            instances.append(Instance(f"http://127.0.0.1:{port}", proc, log_path))
        for instance in instances:
            _wait_ready(instance, ready_timeout_s)
        yield instances
    finally:
        for instance in instances:
            _stop(instance)
