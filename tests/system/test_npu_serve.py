"""``pi-axera-sd serve`` as systemd runs it, with the pyaxengine stand-in on the subprocess's
``PYTHONPATH`` (``tests/standin``): two instances pinned to two M.2 cards, the exit code of each
start-up fault, and the port opened only once the models are loaded."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from test_npu_faults import as_axmodels

from support.server import ServeProcess, free_port

TESTS = Path(__file__).resolve().parents[1]  # tests/: its support/ and standin/
SERVE = [str(Path(sys.executable).with_name("pi-axera-sd")), "serve"]


@pytest.fixture(scope="module")
def npu_models(tiny_model_dir, tmp_path_factory) -> Path:
    return as_axmodels(tiny_model_dir, tmp_path_factory.mktemp("npu-serve") / "models")


def npu_env(models: Path, tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "PYTHONPATH": os.pathsep.join([str(TESTS / "standin"), str(TESTS)]),
        "MODELS_DIR": str(models),
        "PI_AXERA_SD_RUNTIME": "axengine",
        "PI_AXERA_SD_CLIP_DIR": str(tmp / "no-clip"),
        "PI_AXERA_SD_API_AUTH": "",
        "PI_AXERA_SD_API_TOKEN": "",
        "PI_AXERA_SD_SHUTDOWN_GRACE_S": "5",
        **extra,
    }


def test_two_instances_pinned_to_cards_0_and_1(npu_models, tmp_path):
    record = tmp_path / "opened.jsonl"
    env = npu_env(npu_models, tmp_path, FAKE_AXENGINE_RECORD=str(record))
    servers = []
    for card in (0, 1):  # as the README shows it: one instance per card, each on its own port
        port = free_port()
        server = ServeProcess(
            {**env, "PORT": str(port)}, [*SERVE, "--npu-device", str(card), "--port", str(port)]
        )
        server.url = f"http://127.0.0.1:{port}"
        servers.append(server)
    try:
        for server in servers:
            server.wait_ready()
        devices = [httpx.get(f"{s.url}/ready").json()["accelerator"]["device"] for s in servers]
        assert devices == [0, 1]
        opened = [json.loads(line) for line in record.read_text().splitlines()]
        by_pid: dict[int, set[int]] = {}
        for entry in opened:
            by_pid.setdefault(entry["pid"], set()).add(entry["device_id"])
        assert by_pid == {servers[0].proc.pid: {0}, servers[1].proc.pid: {1}}
        # text encoder, UNet, VAE decoder and encoder, TAESD decoder and encoder: each server
        assert len(opened) == 2 * 6
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize(
    ("extra", "code", "says"),
    [
        ({"FAKE_AXENGINE_FAULT": "no_device", "PI_AXERA_SD_NPU_WAIT_S": "1"}, 75, "find total 0 device"),
        ({"FAKE_AXENGINE_FAULT": "no_driver"}, 2, "found no NPU driver library"),
        ({"FAKE_AXENGINE_FAULT": "load"}, 2, "the NPU refused the model"),
        ({"PYTHONPATH": str(TESTS)}, 2, "pyaxengine is not installed"),
    ],
    ids=["not-ready", "no-driver", "model-refused", "no-wheel"],
)
def test_start_up_faults_exit_with_their_code(npu_models, tmp_path, extra, code, says):
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        **npu_env(npu_models, tmp_path, **extra),
    }
    done = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr[-2000:]
    assert says in done.stderr


def test_listen_after_load_opens_the_port_only_when_ready(npu_models, tmp_path):
    # the card comes up after three attempts (about 3.5 s of backoff)
    env = npu_env(npu_models, tmp_path, FAKE_AXENGINE_FAULT="no_device", FAKE_AXENGINE_FAULT_OPENS="3")
    server = ServeProcess(env, [*SERVE, "--listen-after-load"])
    try:
        first = None
        for _ in range(600):  # bounded: 60 s
            if server.proc.poll() is not None:
                break
            try:
                first = httpx.get(f"{server.url}/ready", timeout=2.0)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert first is not None and first.status_code == 200  # never a 503 "models are loading"
        assert first.json()["accelerator"]["load_attempts"] == 4
    finally:
        server.stop()


def test_serve_with_a_model_missing_one_file_names_it_without_other_advice(tiny_model_dir, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "mine")
    (folder / "vae_decoder.onnx").unlink()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(free_port()), "MODELS_DIR": str(folder)}
    done = subprocess.run(SERVE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert (
        f"VAE decoder {folder / 'vae_decoder.onnx'}" in done.stderr and "layout tried: AXERA" in done.stderr
    )
    assert "models random" not in done.stderr and "models pull" not in done.stderr


# 30 four-token phrases joined by commas, and one word: 120 CLIP tokens
ANIMALS = ["fox", "owl", "deer", "hare", "lynx", "wolf"] * 5
LONG_PROMPT = ", ".join(f"a detailed {animal}" for animal in ANIMALS) + " sky"


INIT = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)


def masked_request() -> dict:
    def png(array: np.ndarray) -> str:
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG")
        return base64.b64encode(buf.getvalue()).decode()

    mask = np.zeros((128, 128), np.uint8)
    mask[32:96, 40:88] = 255
    return {"prompt": "x", "seed": 2, "init_images": [png(INIT)], "mask": png(mask), "mask_blur": 0}


def test_on_the_npu_a_long_prompt_uses_the_first_chunk_and_says_so_and_masks_work(npu_models, tmp_path):
    """The .axmodel is compiled at 77 context tokens: a 120-token prompt cannot be followed whole.
    Never silently: the A1111 info and infotext, /generate, OpenAI's answer and the log all say it."""
    from pi_axera_sd.engine.infotext import parse_infotext

    server = ServeProcess(npu_env(npu_models, tmp_path), SERVE).wait_ready()
    try:
        counted = httpx.post(f"{server.url}/prompt/tokens", json={"prompt": LONG_PROMPT}).json()
        assert counted["token_count"] == 120 and counted["model_chunks"] == 1
        a1111 = httpx.post(
            f"{server.url}/sdapi/v1/txt2img", json={"prompt": LONG_PROMPT, "seed": 1}, timeout=60
        ).json()
        info = json.loads(a1111["info"])
        (warning,) = [w for w in info["warnings"] if "tokens were dropped" in w]
        print(f"fixed-77 NPU model, A1111 info: {warning}")
        assert "120 tokens in 2 chunks" in warning
        assert f"{counted['dropped_tokens']} tokens were dropped" in warning
        assert warning in parse_infotext(info["infotexts"][0])["Warnings"]
        generate = httpx.post(f"{server.url}/generate", json={"prompt": LONG_PROMPT}, timeout=60).json()
        assert warning in generate["warnings"]
        openai = httpx.post(
            f"{server.url}/v1/images/generations", json={"prompt": LONG_PROMPT}, timeout=60
        ).json()
        assert warning in openai["warnings"]
        # inpainting is numpy around the sessions: the same path on the NPU
        masked = httpx.post(f"{server.url}/sdapi/v1/img2img", json=masked_request(), timeout=60).json()
        result = np.asarray(Image.open(io.BytesIO(base64.b64decode(masked["images"][0]))).convert("RGB"))
        keep = np.ones((128, 128), bool)
        keep[32:96, 40:88] = False
        assert np.array_equal(result[keep], INIT[keep]) and not np.array_equal(result[~keep], INIT[~keep])
    finally:
        server.stop()
    assert "tokens were dropped" in server.log.text()
