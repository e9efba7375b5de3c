"""Give back the pages of memory-mapped model files once OpenVINO has compiled from them.

OpenVINO memory-maps IR weights (``*.bin``) and its cached blobs, reads every page while compiling,
and repacks the weights into its own buffers. The read pages stay mapped, so the process's resident
size counts each weight twice (``bench/ov_memory.py`` measured it: the INT8 UNet holds 0.86 GB of
mapped file pages beside ~0.95 GB it allocated). ``MADV_DONTNEED`` on those shared read-only mappings
unmaps the pages from this process; the file and the mapping stay, so a page OpenVINO does read
again is faulted back in from the page cache or the disk (correct, only slower). Linux only; a
no-op elsewhere or when anything about it fails.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = 4  # <sys/mman.h> on Linux, every architecture this project runs on
MAPS = Path("/proc/self/maps")


def read_only_file_mappings(folders: Iterable[Path], maps: Path = MAPS) -> list[tuple[int, int, str]]:
    """``(start, end, path)`` of each shared read-only mapping of a file in ``folders``."""
    roots = [str(Path(f).resolve()) + "/" for f in folders]
    found = []
    for line in maps.read_text().splitlines():
        parts = line.split(maxsplit=5)
        # shared and read-only only: a private mapping may hold the process's own changes (a
        # library's relocated pages are private and read-only after loading); OpenVINO maps shared
        if len(parts) < 6 or "w" in parts[1] or not parts[1].endswith("s"):
            continue
        path = parts[5].strip()
        if any(path.startswith(root) for root in roots):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            found.append((start, end, path))
    return found


def release_mapped_files(folders: Iterable[Path]) -> int:
    """Unmap the resident pages of read-only mappings of files under ``folders``; returns the size
    of the mappings advised (an upper bound of what was resident)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        mappings = read_only_file_mappings(folders)
    except (OSError, AttributeError) as exc:
        log.debug("not releasing mapped model pages: %s", exc)
        return 0
    advised = 0
    for start, end, _path in mappings:
        if libc.madvise(start, end - start, MADV_DONTNEED) == 0:
            advised += end - start
    return advised
