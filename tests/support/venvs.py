"""Fresh virtual environments holding what a *user* installs: ``pip install .`` (no extras, or one
extra) pinned by the lock, and nothing else. The suite's own venv has every extra, so it cannot see
an import that only the test extras happen to bring.

A venv is kept under ``.cache/venvs/`` keyed by the hash of ``pyproject.toml`` and the lock: when
either changes it is made afresh; otherwise only the project itself is reinstalled (``--no-deps``),
so a rerun costs seconds. The project is always installed as a user gets it: a built wheel, not an
editable link into the clone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "venvs"
INSTALL_TIMEOUT_S = 900


def lock_file() -> Path:
    """The lock under test: ``make test`` names it (``make lock`` tests a new one before keeping it)."""
    return ROOT / os.environ.get("PI_AXERA_SD_LOCK", "requirements.lock")


def _key(extra: str) -> str:
    digest = hashlib.sha256()
    for part in (ROOT / "pyproject.toml", lock_file()):
        digest.update(part.read_bytes())
    digest.update(sys.version.encode())
    return f"{extra or 'base'}-{digest.hexdigest()[:12]}"


def _pip(python: Path, *args: str) -> None:
    run = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    if run.returncode != 0:
        raise AssertionError(
            f"pip install {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        )


def torch_index_args() -> list[str]:
    """The Makefile's probe of PyTorch's CPU index (nothing when it cannot be reached)."""
    url = os.environ.get("TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "torch_index.py"), url, ""],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return run.stdout.split()


def fresh_venv(extra: str = "") -> Path:
    """The ``bin`` folder of a venv with ``pip install -c LOCK '.[extra]'`` (``.`` for no extra).
    One build at a time: pytest workers (``make test`` runs two) may ask for the same venv."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fresh_venv(extra)


def _fresh_venv(extra: str) -> Path:
    folder = CACHE / _key(extra)
    python = folder / "bin" / "python"
    target = f".[{extra}]" if extra else "."
    index = torch_index_args() if extra == "export" else []
    if not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        for stale in CACHE.glob(f"{extra or 'base'}-*"):  # an older pyproject's or lock's venv
            shutil.rmtree(stale, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
        _pip(python, "-c", str(lock_file()), *index, target)
        (folder / ".complete").write_text(target + "\n")
    else:  # same dependencies: only this checkout's code is new
        _pip(python, "--no-deps", "--force-reinstall", ".")
    return folder / "bin"


def distributions(bin_dir: Path) -> dict[str, str]:
    """Installed distribution name (normalised) -> version, in the venv of ``bin_dir``."""
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    run = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True)
    return {normalise(k): v for k, v in json.loads(run.stdout).items()}


def normalise(name: str) -> str:
    """PEP 503 normalisation: ``Pydantic_Core`` -> ``pydantic-core``."""
    return re.sub(r"[-_.]+", "-", name).lower()
