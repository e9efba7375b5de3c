"""The Makefile's own promises, run as a user would: installs happen once per change of
pyproject.toml or the lock (stamps), and a Debian package a test needs is installed through sudo
when not root, or named in one line when neither root nor sudo is there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")


# What a make that runs this suite (make test, or make lock's VENV=... LOCK=...) hands its children,
# through MAKEFLAGS and as environment variables; a user's shell has none of them.
MAKE_VARS = (
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
    *re.findall(
        r"^([A-Z_]+) \?=", (Path(__file__).resolve().parents[2] / "Makefile").read_text(), flags=re.M
    ),
)


def _make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}
    return subprocess.run(
        [MAKE, "-s", *args], cwd=ROOT, env=env or clean, capture_output=True, text=True, timeout=60
    )


def test_without_root_or_sudo_a_missing_package_is_one_line(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root; and no sudo on this PATH
    (bin_dir / "id").chmod(0o755)
    run = _make("chromium", "CHROMIUM=/nonexistent/chromium", env={"PATH": str(bin_dir)})
    assert run.returncode == 2
    assert run.stderr.splitlines()[0] == (
        "error: the tests need Debian's chromium: run 'sudo apt-get install -y chromium' as an "
        "administrator, then make test again"
    )


def test_with_sudo_the_install_goes_through_it(tmp_path):
    """Not root, sudo there: apt-get runs through it (a stand-in sudo records the calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sudo.log"
    scripts = {"id": "echo 1000", "sudo": f'echo "$@" >> {log}'}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    run = _make("chromium", "CHROMIUM=/nonexistent/chromium", env={"PATH": str(bin_dir)})
    assert run.returncode == 0, run.stderr
    assert log.read_text().splitlines() == [
        "apt-get update",
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium",
    ]


def test_installs_run_only_when_pyproject_or_the_lock_changed():
    stamp_rules = _make("-n", "-p", "install").stdout
    for target in (".installed-base", ".installed-export", ".installed-fast", ".installed-dev"):
        rule = next(line for line in stamp_rules.splitlines() if line.startswith(f".venv/{target}:"))
        assert "pyproject.toml" in rule and "requirements.lock" in rule, rule
