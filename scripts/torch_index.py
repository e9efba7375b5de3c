"""Print the pip arguments that add PyTorch's CPU wheel index, once it is known to answer.

``make`` runs this with the venv's Python before an install that may need torch (the ``export``
extra). PyPI's Linux x86_64 torch is the CUDA build (about 15 NVIDIA wheels, several GB), so the CPU
index is preferred; but pip retries an index that does not answer for every package it looks up
(minutes of waiting), so the index is probed once here:

- the locked torch is already installed: nothing to add (no probe, a quick restart);
- the index answers: ``--extra-index-url URL``;
- it does not: nothing, and one line on stderr saying so and how to choose (``TORCH_INDEX=``).

Usage: ``python scripts/torch_index.py URL LOCK`` (an empty URL prints nothing).
"""

from __future__ import annotations

import re
import sys
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

TIMEOUT_S = 8.0


def locked_torch(lock: Path) -> str | None:
    """The torch version the lock pins, if it pins one."""
    if not lock.is_file():
        return None
    match = re.search(r"^torch==([^\s;#]+)", lock.read_text(), flags=re.M)
    return match.group(1) if match else None


def installed_torch() -> str | None:
    try:
        return metadata.version("torch").split("+")[0]  # 2.13.0+cpu is the locked 2.13.0
    except metadata.PackageNotFoundError:
        return None


def unreachable(url: str) -> str | None:
    """Why ``url`` gives no answer, or None when any HTTP answer comes back."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S):
            return None
    except urllib.error.HTTPError:  # the server answered
        return None
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else ""
    lock = Path(argv[2]) if len(argv) > 2 else Path("requirements.lock")
    if not url:
        return 0
    installed = installed_torch()
    if installed is not None and installed == locked_torch(lock):
        return 0
    reason = unreachable(url)
    if reason is None:
        print(f"--extra-index-url {url}")
        return 0
    print(
        f"note: PyTorch's CPU index {url} cannot be reached ({reason}); torch comes from pip's "
        "configured indexes instead (on Linux x86_64, PyPI's torch is the CUDA build, several GB). "
        "TORCH_INDEX=URL names another index; TORCH_INDEX= skips this check.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
