"""OpenVINO's compiled-model cache: a second `serve` imports every model instead of compiling it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pi_axera_sd.config import Settings
from pi_axera_sd.runtime.ovcache import cache_dir_for, default_cache_root
from pi_axera_sd.wiring import runtime_options

PI_AXERA_SD = str(Path(sys.executable).with_name("pi-axera-sd"))
WAIT_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_until_ready(models: Path, cache: Path, log: Path) -> list[dict]:
    """Start `serve`, wait (bounded) for /ready, stop it; the JSON log lines of that start."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PI_AXERA_SD_")},
        "MODELS_DIR": str(models),
        "PORT": str(port),
        "PI_AXERA_SD_RUNTIME": "openvino",
        "PI_AXERA_SD_OPENVINO_CACHE_DIR": str(cache),
        "PI_AXERA_SD_CLIP_DIR": "/nonexistent",
        "PI_AXERA_SD_SHUTDOWN_GRACE_S": "1",
    }
    with log.open("w") as out:
        proc = subprocess.Popen([PI_AXERA_SD, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "serve never became ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("msg", x.get("message")) == "OpenVINO model ready"]


@pytest.mark.torch  # the tiny model is built with torch; needs the openvino extra
def test_second_start_uses_the_cache(tiny_model_dir, tmp_path):
    cache = tmp_path / "ov-cache"
    first = _start_until_ready(tiny_model_dir, cache, tmp_path / "first.log")
    assert first and not any(x["from_cache"] for x in first)
    assert any(cache.iterdir())
    second = _start_until_ready(tiny_model_dir, cache, tmp_path / "second.log")
    assert {x["model"] for x in second} == {x["model"] for x in first}
    assert all(x["from_cache"] for x in second)


def test_a_changed_model_file_gets_a_new_cache_folder(tmp_path):
    model = tmp_path / "unet.onnx"
    model.write_bytes(b"one")
    first = cache_dir_for(tmp_path / "cache", model)
    (tmp_path / "unet.onnx.data").write_bytes(b"weights")  # a weight file beside it counts too
    second = cache_dir_for(tmp_path / "cache", model)
    assert first is not None and second is not None and first != second and second.is_dir()


def test_an_unwritable_cache_means_no_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    model = tmp_path / "unet.onnx"
    model.write_bytes(b"x")
    assert cache_dir_for(blocker / "cache", model) is None


def test_settings_default_and_off(monkeypatch, tmp_path):
    monkeypatch.delenv("PI_AXERA_SD_OPENVINO_CACHE_DIR", raising=False)  # conftest's folder for the run
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / "pi-axera-sd" / "openvino"
    assert runtime_options(Settings()).cache_dir == tmp_path / "pi-axera-sd" / "openvino"
    assert runtime_options(Settings(openvino_cache=False)).cache_dir is None
