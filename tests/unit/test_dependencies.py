"""Declared dependencies are the imported ones, and the lock pins the tree the suite runs on.

- ``deptry src``: no import of an undeclared package, none of a package that only comes along with
  another one (``httpx`` came with huggingface_hub until 2.5 dropped it: the crash this guards).
- Building the CLI's parser (``--help``, ``serve``) imports base packages only.
- Each optional package the CLI names in its "install the extra" line is declared in that extra.
- The suite's own venv is the lock's tree: every installed package at its locked version.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

from pi_axera_sd.settings_errors import EXTRAS, LOCK_FILE
from support.venvs import lock_file, normalise

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BIN = Path(sys.executable).parent


def _requirement_names(requirements: list[str]) -> set[str]:
    return {normalise(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


BASE = _requirement_names(PYPROJECT["project"]["dependencies"])
EXTRAS_DECLARED = PYPROJECT["project"]["optional-dependencies"]
OPTIONAL = {extra: _requirement_names(reqs) for extra, reqs in EXTRAS_DECLARED.items()}


def test_deptry_finds_every_import_declared():
    deptry = shutil.which("deptry", path=str(BIN))
    assert deptry, "deptry comes with the test-fast extra"
    run = subprocess.run([deptry, "src"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_building_the_parser_imports_base_packages_only():
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "from pi_axera_sd.cli.main import build_parser\n"
        "build_parser()\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    roots = set(json.loads(run.stdout)) - set(sys.stdlib_module_names) - {"pi_axera_sd"}
    owners = metadata.packages_distributions()
    imported = {normalise(dist) for root in roots for dist in owners.get(root, [])}
    extra_only = set().union(*OPTIONAL.values()) - BASE
    assert not imported & extra_only, imported & extra_only
    # the load tester's HTTP client is imported when `loadtest` runs, not for every command
    assert "httpx" not in roots and "matplotlib" not in roots


def test_each_missing_extra_hint_names_the_extra_that_declares_the_package():
    owners = metadata.packages_distributions()
    for module, extra in EXTRAS.items():
        assert extra in OPTIONAL, f"{module}: no extra named {extra!r} in pyproject.toml"
        names = {normalise(d) for d in owners.get(module, [])} or {
            normalise(name) for name, mod in PYPROJECT["tool"]["deptry"]["package_module_name_map"].items()
            if mod == module
        }  # fmt: skip
        assert names and names <= OPTIONAL[extra], f"{module} -> {names}, not in [{extra}]"


def test_torch_stays_out_of_the_base_install():
    assert not {"torch", "torchvision", "diffusers", "transformers"} & BASE


def test_the_makefile_and_the_hints_name_the_same_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^LOCK \?= {re.escape(LOCK_FILE)}$", makefile, flags=re.M)
    assert (ROOT / LOCK_FILE).is_file()
    # the lock keeps the deliberate pins of constraints.txt (torch: the CPU build on disk)
    held = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line]
    locked = set((ROOT / LOCK_FILE).read_text().splitlines())
    assert held and set(held) <= locked, held


def _locked() -> dict[str, str]:
    pinned = {}
    for line in lock_file().read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"not a pin: {line!r}"
            pinned[normalise(name)] = version.strip()
    return pinned


def test_this_venv_is_the_locked_tree():
    """What the suite passes on is what the lock pins: every installed package, at its locked version."""
    pinned = _locked()
    off = []
    # site-packages only: setuptools puts its vendored copies (jaraco, zipp...) on sys.path once imported
    installed = {sysconfig.get_paths()[kind] for kind in ("purelib", "platlib")}
    for dist in metadata.distributions(path=sorted(installed)):
        name = normalise(dist.metadata["Name"])
        if name in ("pi-axera-sd", "pip", "setuptools", "wheel"):
            continue
        if pinned.get(name) != dist.version.split("+")[0]:
            off.append(f"{name} {dist.version} (lock: {pinned.get(name, 'absent')})")
    assert not off, (
        f"the test venv differs from {lock_file().name}: {', '.join(sorted(off))}; "
        "'make clean test' installs the locked tree, 'make lock' makes a new lock"
    )
