"""Commands printed in hints, written so they run as printed: the full path of this install's
``pi-axera-sd`` (a venv's ``bin`` is often not on ``PATH``)."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path


def tool() -> str:
    """``pi-axera-sd`` when it is this install's on ``PATH``, else its full path."""
    script = Path(sys.executable).with_name("pi-axera-sd")
    if not script.is_file():
        return f"{shlex.quote(sys.executable)} -m pi_axera_sd"
    on_path = shutil.which("pi-axera-sd")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "pi-axera-sd"
    return shlex.quote(str(script))


def command(*args: object) -> str:
    """``command("models", "verify", dir)`` -> ``/path/.venv/bin/pi-axera-sd models verify dir``."""
    return " ".join([tool(), *(shlex.quote(str(a)) for a in args)])
