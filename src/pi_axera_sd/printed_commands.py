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


def clone_root() -> Path | None:
    """The project clone this install runs from (the editable install ``make`` makes), else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "Makefile").is_file() and (root / "pyproject.toml").is_file() else None


def demo_hint() -> str:
    """How to get an image with no model download: ``make demo`` where there is a clone (``-C`` when the
    user stands elsewhere), else the random-weights model command."""
    root = clone_root()
    if root is None:
        random = command("models", "random", "DIR")
        return (
            f"to try the API without a download, make a model with random weights: {random} "
            "(needs the 'export' extra)"
        )
    here = Path.cwd().resolve() == root
    make = "make demo" if here else f"make -C {shlex.quote(str(root))} demo"
    return f"to try the API without a download (random weights, the images are noise): {make}"
