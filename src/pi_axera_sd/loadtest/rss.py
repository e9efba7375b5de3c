"""Resident memory of local server processes, read from /proc (Linux); empty elsewhere."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def rss_mb(pids: Iterable[int]) -> dict[int, float]:
    """pid -> resident set size in MiB, for the processes that are still there."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                out[pid] = round(int(line.split()[1]) / 1024.0, 1)
    return out
