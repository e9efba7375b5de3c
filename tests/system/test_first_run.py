"""``serve`` on an empty model folder downloads the platform's default model (here, without an
NPU: the OpenVINO INT8 preset) from the local hub server, which holds the tiny LCM model in the
diffusers/optimum OpenVINO layout under the real repo's name; then it serves images."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_hub_openvino import INT8_REPO, openvino_repo_files

from pi_axera_sd.config import Settings
from pi_axera_sd.deploy.systemd import render_unit, unit_for_install
from pi_axera_sd.server.core.firstrun import default_spec, wants_first_run
from support.hubserver import FakeHub, hub_env
from support.server import ServeProcess, free_port

WAIT_S = 90.0
UNET_BIN = "unet/openvino_model.bin"
CLI = str(Path(sys.executable).with_name("pi-axera-sd"))


@pytest.fixture
def hub():
    with FakeHub() as server:
        yield server


@pytest.fixture
def env(hub, tmp_path):
    (tmp_path / "models").mkdir()  # an explicit MODELS_DIR must exist (only ./models is made); empty
    return {
        **hub_env(hub.endpoint, tmp_path),
        "MODELS_DIR": str(tmp_path / "models"),
        "PI_AXERA_SD_CLIP_DIR": str(tmp_path / "no-clip"),
        "PI_AXERA_SD_SHUTDOWN_GRACE_S": "2",
    }


def _until(check, what: str, proc: subprocess.Popen | None = None, timeout: float = WAIT_S):
    """Poll ``check`` (bounded) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _serve_once(env: dict[str, str], cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess:
    """``pi-axera-sd serve`` where it is expected to stop before serving."""
    port = str(free_port())  # never 5000: the user's own service may be listening there
    return subprocess.run(
        [CLI, "serve"],
        env={**env, "PORT": port, **extra},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _ready_reason(url: str) -> str | None:
    try:
        answer = httpx.get(f"{url}/ready", timeout=2.0)
    except httpx.TransportError:
        return None
    return "ready" if answer.status_code == 200 else answer.json()["reason"]


def _partial_bytes(cache: Path, sha: str) -> int:
    """Bytes of the UNet's unfinished download in the cache (written in whole 10 MiB chunks)."""
    blobs = cache / f"models--{INT8_REPO.replace('/', '--')}" / "blobs"
    return max([p.stat().st_size for p in blobs.glob(f"{sha}*.incomplete")] + [0]) if blobs.is_dir() else 0


def _cdn_gets(hub: FakeHub) -> list[str]:
    return [r.path for r in hub.requests("GET", server="cdn")]


def test_first_run_downloads_with_progress_keeps_finished_files_resumes_and_serves(
    hub, env, tiny_optimum_ov_dir, tmp_path
):
    # a UNet big enough to span several of the client's 10 MiB chunks, sent slowly at first
    repo = hub.add_repo(INT8_REPO, openvino_repo_files(tiny_optimum_ov_dir, pad_unet_to=24 << 20))
    repo.slow, repo.slow_s = {UNET_BIN}, 8.0
    cache = Path(env["HF_HUB_CACHE"])
    sha = hashlib.sha256(repo.files[UNET_BIN]).hexdigest()

    first = ServeProcess(env)
    try:
        reasons = set()

        def downloading() -> bool:
            reason = _ready_reason(first.url)
            reasons.add(reason)
            return bool(
                reason and re.fullmatch(r"downloading model, \d+ %", reason) and _partial_bytes(cache, sha)
            )

        _until(downloading, "the UNet download in progress", first.proc)
        first.proc.send_signal(signal.SIGINT)  # Ctrl-C in the middle of the UNet download
        first.proc.wait(timeout=30)
    finally:
        first.stop()
    percents = {
        int(r.split(", ")[1].rstrip(" %")) for r in reasons if r and r.startswith("downloading model, ")
    }
    assert percents and max(percents) > 0, reasons  # progress was reported while downloading
    assert not (tmp_path / "models" / "unet").exists()  # nothing placed from an unfinished download
    fetched_first = _cdn_gets(hub)

    # the second start: the connection drops halfway through the UNet once, and is resumed
    repo.slow, repo.drop_once = set(), {UNET_BIN}
    started = time.monotonic()
    second = ServeProcess(env)
    try:
        try:
            _until(lambda: _ready_reason(second.url) == "ready", "readiness", second.proc)
        except AssertionError:
            print(second.log.text()[-3000:])
            raise
        answer = httpx.post(f"{second.url}/generate", json={"prompt": "a red fox", "seed": 7}, timeout=60)
        first_image_s = time.monotonic() - started
        assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text
        models = httpx.get(f"{second.url}/sdapi/v1/sd-models", timeout=10).json()
        assert models[0]["model_name"] == "tiny-lcm" and models[0]["filename"] == env["MODELS_DIR"]
    finally:
        second.stop()
    print(f"first run: time from the second start to the first served image {first_image_s:.1f} s")

    unet_url = f"/cdn/{INT8_REPO}/{sha}"
    fetched_second = _cdn_gets(hub)[len(fetched_first) :]
    finished_before = {p for p in fetched_first if p != unet_url}
    assert finished_before and not finished_before & set(fetched_second)  # finished files were kept
    ranges = [r.headers.get("range") for r in hub.requests("GET", unet_url, server="cdn")]
    assert ranges[-1] is not None and re.fullmatch(r"bytes=[1-9]\d*-", ranges[-1]), ranges  # resumed
    placed = tmp_path / "models" / UNET_BIN
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == sha
    text = second.log.text()
    assert f"first run: {env['MODELS_DIR']} holds no model; downloading {INT8_REPO}" in text
    assert "PI_AXERA_SD_AUTO_DOWNLOAD=0 turns this off" in text


def test_first_run_checksum_mismatch_exits_with_one_line(hub, env, tiny_optimum_ov_dir, tmp_path):
    hub.add_repo(INT8_REPO, openvino_repo_files(tiny_optimum_ov_dir), corrupt={"unet/openvino_model.xml"})
    proc = ServeProcess(env)
    try:
        assert proc.proc.wait(timeout=WAIT_S) == 3  # exitcodes.RUNTIME: a rerun fetches the file afresh
    finally:
        proc.stop()
    errors = [line for line in proc.log.text().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.log.text()
    assert f"first-run download of {INT8_REPO} failed: integrity check failed" in errors[0]
    assert "run the same command again" in errors[0] and "models pull openvino --dest" in errors[0]
    assert not (tmp_path / "models" / "unet").exists()


def test_first_run_offline_says_what_to_do_in_one_line(env):
    run = _serve_once(env, HF_HUB_OFFLINE="1")
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: {env['MODELS_DIR']} holds no model and HF_HUB_OFFLINE=1")
    assert f"'{CLI} models pull openvino --dest {env['MODELS_DIR']}'" in lines[0]  # runs as printed


def test_first_run_with_an_unknown_default_model_is_a_config_error(env):
    run = _serve_once(env, PI_AXERA_SD_DEFAULT_MODEL="no-such-preset")
    assert run.returncode == 2
    assert run.stderr.strip().startswith(
        "error: PI_AXERA_SD_DEFAULT_MODEL: 'no-such-preset' is neither a preset"
    )


def test_first_run_can_be_turned_off(env):
    run = _serve_once(env, PI_AXERA_SD_AUTO_DOWNLOAD="0")
    assert run.returncode == 2
    assert "model files missing" in run.stderr and "pi-axera-sd models pull openvino --dest" in run.stderr


def test_systemd_unit_turns_the_first_run_download_off(tmp_path):
    unit = render_unit(unit_for_install(Settings(), user="pi", group="pi", working_directory=tmp_path))
    assert 'Environment="PI_AXERA_SD_AUTO_DOWNLOAD=0"' in unit
    opted_in = unit_for_install(
        Settings(), user="pi", working_directory=tmp_path, extra_env=["PI_AXERA_SD_AUTO_DOWNLOAD=1"]
    )
    assert opted_in.environment["PI_AXERA_SD_AUTO_DOWNLOAD"] == "1"


def test_what_counts_as_an_empty_model_folder(tmp_path, monkeypatch):
    models = tmp_path / "models"
    settings = Settings(models_dir=models, clip_dir=models / "clip")
    assert wants_first_run(settings)  # no folder yet
    (models / "clip").mkdir(parents=True)
    (models / "clip" / "vision.onnx").write_bytes(b"x")  # the CLIP model lives under models/ by default
    (models / ".pi-axera-sd-pull.json").write_text("{}")
    assert wants_first_run(settings)
    (models / "unet.onnx").write_bytes(b"x")
    assert not wants_first_run(settings)  # a (broken) model is reported, never overwritten
    assert not wants_first_run(Settings(models_dir=tmp_path / "none", auto_download=False))
    assert not wants_first_run(Settings(models_dir=tmp_path / "none", unet_model=tmp_path / "u.onnx"))
    monkeypatch.delitem(os.environ, "PI_AXERA_SD_DEFAULT_MODEL", raising=False)
    assert default_spec(Settings()) == "openvino"  # no pyaxengine here: the CPU model
    assert default_spec(Settings(default_model="someone/model")) == "someone/model"


def test_first_run_without_a_network_exits_3_with_one_line(env, tmp_path):
    """One probe of the hub before the server starts: no retries, no traceback, one line that says
    what to do (pull elsewhere, a mirror, or the demo), and exit 3 (the network may come back)."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    run = _serve_once({**env, "HF_ENDPOINT": dead}, cwd=tmp_path)  # outside the clone: make -C
    assert run.returncode == 3  # may work on the next start: systemd may retry
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    line = lines[0]
    assert line.startswith(
        f"error: {env['MODELS_DIR']} holds no model, and the first-run download of {INT8_REPO}"
    )
    assert f"cannot reach {dead} (" in line and "point HF_ENDPOINT at a mirror" in line
    assert f"'{CLI} models pull openvino --dest {env['MODELS_DIR']}'" in line  # runs as printed
    assert line.endswith(
        "(random weights, the images are noise): make -C " + str(Path(CLI).parents[2]) + " demo"
    )
    assert not run.stdout and not any((tmp_path / "models").iterdir())
