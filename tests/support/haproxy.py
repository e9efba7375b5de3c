"""HAProxy for the load-balancing tests: Debian's binary (``make haproxy`` installs it) run in the
foreground, and its stats socket read as CSV. No skip: a missing HAProxy fails the test."""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        pytest.fail("HAProxy is not installed: run `make haproxy` (Debian's package; `make test` does it)")
    return found


def check_config(cfg: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [haproxy_binary(), "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30
    )


def server_stats(sock_path: Path, backend: str) -> dict[str, dict[str, str]]:
    """Server name (and "BACKEND") -> its row of ``show stat`` (status, stot, wredis...) in ``backend``."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {r["svname"]: r for r in rows if r["pxname"] == backend and r["svname"] != "FRONTEND"}


def wait_status(sock_path: Path, backend: str, server: str, status: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = server_stats(sock_path, backend)[server]["status"]
        if seen == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{backend}/{server} is {seen!r}, not {status!r}, after {timeout}s")
