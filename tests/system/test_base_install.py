"""What a user installs, proven in fresh venvs (tests/support/venvs.py), not in the suite's own venv:

- the base install (``pip install .``, no extras, as ``make serve`` installs): every sub-command's
  ``--help``; ``serve`` offline on an empty folder and on a missing one (one line, exit 2); ``serve``
  on a model folder answering ``/generate`` with a PNG; every module that needs no extra imports;
  ``loadtest`` without the ``plot`` extra (no charts, said in one line, or exit 2 when asked for);
- ``[export]``: ``models export`` of a diffusers folder, which the base install serves;
- ``[plot]``: the ``loadtest`` charts.

The venvs are pinned by the lock, so these also prove the lock installs.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import pkgutil
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

import pi_axera_sd
from pi_axera_sd.cli.main import build_parser
from support.server import ServeProcess, free_port
from support.venvs import distributions, fresh_venv, normalise

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

TIMEOUT_S = 300


@pytest.fixture(scope="module")
def base_bin() -> Path:
    return fresh_venv()


def _run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout=TIMEOUT_S):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PI_AXERA_SD_")}
    return subprocess.run(
        args, cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def _sub_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI, read from the parser itself (a new sub-command is covered)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((*prefix, name))
                found += _sub_commands(child, (*prefix, name))
    return found


def _png_from_generate(url: str) -> Image.Image:
    answer = httpx.post(f"{url}/generate", json={"prompt": "a lighthouse", "seed": 3}, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["base64"], validate=True)))
    assert image.format == "PNG"
    return image


def test_base_install_has_no_extra_package(base_bin):
    installed = distributions(base_bin)
    assert "pi-axera-sd" in installed
    for extra_only in ("torch", "diffusers", "transformers", "matplotlib", "nncf", "pytest", "deptry"):
        assert extra_only not in installed, f"{extra_only} came with the base install"


def test_every_sub_command_answers_help_on_the_base_install(base_bin, tmp_path):
    commands = _sub_commands(build_parser())
    assert ("serve",) in commands and ("models", "export") in commands and ("loadtest",) in commands
    top = _run([str(base_bin / "pi-axera-sd"), "--help"], cwd=tmp_path)
    assert top.returncode == 0 and "serve" in top.stdout, top.stderr
    for words in commands:
        run = _run([str(base_bin / "pi-axera-sd"), *words, "--help"], cwd=tmp_path)
        assert run.returncode == 0, f"{' '.join(words)} --help: {run.stderr[-2000:]}"
        assert run.stdout.startswith("usage: pi-axera-sd " + " ".join(words)), run.stdout[:200]
        assert not run.stderr, run.stderr


def test_every_module_imports_on_the_base_install(base_bin):
    """An extra's packages are imported inside the functions that need them, never at a module's top:
    so no module, reachable from ``serve`` or not, fails to import without the extras."""
    modules = pkgutil.walk_packages(pi_axera_sd.__path__, "pi_axera_sd.")
    names = sorted(m.name for m in modules if not m.name.endswith("__main__"))
    assert "pi_axera_sd.modeltools.export_sd" in names and "pi_axera_sd.loadtest.report" in names
    code = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = repr(exc)\n"
        "print(json.dumps(failed))\n"
    )
    run = _run([str(base_bin / "python"), "-c", code, json.dumps(names)])
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {}


def test_serve_on_the_base_install_offline_without_a_model_says_one_line(base_bin, tmp_path):
    offline = {"HF_HUB_OFFLINE": "1", "PORT": str(free_port())}
    empty = tmp_path / "empty"
    empty.mkdir()
    for cwd, args in ((tmp_path, ["--models", str(empty)]), (empty, [])):
        run = _run([str(base_bin / "pi-axera-sd"), "serve", *args], cwd=cwd, env=offline, timeout=60)
        assert run.returncode == 2, run.stderr
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
        assert "HF_HUB_OFFLINE=1" in lines[0] and f"{base_bin}/pi-axera-sd models pull openvino" in lines[0]
        assert not run.stdout


def test_serve_on_the_base_install_refuses_a_models_folder_that_does_not_exist(base_bin, tmp_path):
    typo = tmp_path / "typo" / "path"
    run = _run([str(base_bin / "pi-axera-sd"), "serve", "--models", str(typo)], cwd=tmp_path, timeout=60)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        f"error: invalid setting MODELS_DIR / --models = '{typo}': does not exist (only the default "
        "./models is created, by the first-run download)"
    ]
    assert not typo.exists() and not (tmp_path / "models").exists()


def test_serve_on_the_base_install_answers_generate_with_a_png(base_bin, tiny_model_dir, tmp_path):
    env = {
        "MODELS_DIR": str(tiny_model_dir),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "PI_AXERA_SD_CLIP_DIR": str(tmp_path / "no-clip"),
    }
    server = ServeProcess(env, [str(base_bin / "pi-axera-sd"), "serve"])
    try:
        server.wait_ready(timeout=180)
        image = _png_from_generate(server.url)
        assert image.size == (128, 128)  # the tiny model's size
    finally:
        server.stop()


def test_loadtest_on_the_base_install_without_the_plot_extra(base_bin, tiny_model_dir, tmp_path):
    """Charts are the plot extra's: skipped with one note by default; asked for, exit 2 before any request."""
    env = {"MODELS_DIR": str(tiny_model_dir), "PI_AXERA_SD_CLIP_DIR": str(tmp_path / "no-clip")}
    server = ServeProcess(env, [str(base_bin / "pi-axera-sd"), "serve"])
    try:
        server.wait_ready(timeout=180)
        tool = str(base_bin / "pi-axera-sd")
        common = ["loadtest", "--url", server.url, "--concurrency", "1", "--requests", "2", "--warmup", "0"]
        asked = _run([tool, *common, "--charts", "--out", str(tmp_path / "asked")])
        assert asked.returncode == 2, asked.stderr
        assert asked.stderr.startswith("error: this needs the 'plot' extra (module 'matplotlib'"), (
            asked.stderr
        )
        assert not (tmp_path / "asked" / "loadtest.json").exists()  # refused before the run
        plain = _run([tool, *common, "--out", str(tmp_path / "plain")])
        assert plain.returncode == 0, plain.stderr
        assert "note: no charts (matplotlib is not installed)" in plain.stderr
        assert json.loads((tmp_path / "plain" / "loadtest.json").read_text())["results"][0]["requests"] == 2
    finally:
        server.stop()


@pytest.mark.torch
def test_export_extra_exports_a_model_the_base_install_serves(base_bin, tiny_pipe, tmp_path):
    export_bin = fresh_venv("export")
    installed = distributions(export_bin)
    assert {"torch", "diffusers", "transformers", "onnx"} <= set(installed)
    assert "matplotlib" not in installed and "pytest" not in installed
    source = tmp_path / "tiny-diffusers"
    tiny_pipe.save_pretrained(source)
    out = tmp_path / "exported"
    run = _run([str(export_bin / "pi-axera-sd"), "models", "export", str(source), str(out)], timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (out / "unet.onnx").is_file() and (out / "manifest.json").is_file()
    verify = _run([str(base_bin / "pi-axera-sd"), "models", "verify", str(out)])
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    env = {"MODELS_DIR": str(out), "PI_AXERA_SD_CLIP_DIR": str(tmp_path / "no-clip")}
    server = ServeProcess(env, [str(base_bin / "pi-axera-sd"), "serve"])
    try:
        server.wait_ready(timeout=180)
        _png_from_generate(server.url)
    finally:
        server.stop()


def test_plot_extra_draws_the_loadtest_charts(tiny_model_dir, tmp_path):
    plot_bin = fresh_venv("plot")
    assert "matplotlib" in distributions(plot_bin)
    env = {"MODELS_DIR": str(tiny_model_dir), "PI_AXERA_SD_CLIP_DIR": str(tmp_path / "no-clip")}
    server = ServeProcess(env, [str(plot_bin / "pi-axera-sd"), "serve"])
    try:
        server.wait_ready(timeout=180)
        out = tmp_path / "charts"
        run = _run(
            [str(plot_bin / "pi-axera-sd"), "loadtest", "--url", server.url, "--concurrency", "1,2",
             "--requests", "2", "--warmup", "0", "--charts", "--out", str(out)]
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
    finally:
        server.stop()
    for chart in ("throughput.png", "latency.png"):
        with Image.open(out / chart) as image:
            assert image.format == "PNG" and image.width > 200


def test_lock_pins_every_package_the_base_install_holds(base_bin):
    from support.venvs import lock_file

    pinned = {}
    for line in lock_file().read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[normalise(name)] = version.strip()
    for name, version in distributions(base_bin).items():
        if name in ("pi-axera-sd", "pip", "setuptools", "wheel"):
            continue
        assert pinned.get(name) == version.split("+")[0], (
            f"{name} {version} is not the locked {pinned.get(name)}"
        )
