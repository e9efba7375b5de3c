"""Live previews: the latent -> RGB maps, the A1111 options that drive them, and
``/sdapi/v1/progress`` carrying ``current_image`` while a batch runs."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pi_axera_sd.engine.pipeline import GenerationParams
from pi_axera_sd.engine.preview import LINEAR, TINY, linear_preview, preview_method
from pi_axera_sd.server.app import create_app
from pi_axera_sd.server.core.live_preview import LivePreview
from support.server import GatedPipeline, load_tiny, make_settings, running_server

WAIT = 15.0


def _png(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    image.load()
    assert image.format == "PNG"
    return image


def test_linear_preview_maps_latent_channels_to_rgb():
    latent = np.zeros((1, 4, 8, 6), dtype=np.float32)
    assert linear_preview(latent).shape == (8, 6, 3)
    assert (linear_preview(latent) == 128).all()  # a zero latent is mid grey
    latent[0, 3] = -3.0  # channel 3 pulls blue hardest (its factor is the most negative)
    pixel = linear_preview(latent)[0, 0]
    assert pixel[2] == 255 and pixel[0] < pixel[2]


def test_preview_method_falls_back_to_linear_without_a_tiny_vae(tiny_engine):
    assert preview_method(tiny_engine, TINY) == TINY  # the test model ships a TAESD decoder
    assert preview_method(tiny_engine, LINEAR) == LINEAR

    class NoTiny:
        vae_choices = ("full",)

    assert preview_method(NoTiny(), TINY) == LINEAR


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, (1, TINY)),
        ({"show_progress_type": "Approx cheap", "show_progress_every_n_steps": 2}, (2, LINEAR)),
        ({"live_previews_enable": False}, (0, LINEAR)),
        ({"show_progress_every_n_steps": 0}, (0, TINY)),
        ({"show_progress_every_n_steps": "often"}, (0, TINY)),
    ],
)
def test_options_choose_how_often_and_how(options, expected):
    assert LivePreview(lambda: options).settings() == expected


@pytest.mark.parametrize(("kind", "size"), [("TAESD", 128), ("Approx cheap", 128)])
def test_hook_keeps_the_latest_step_of_the_running_job(tiny_engine, kind, size):
    preview = LivePreview(lambda: {"show_progress_type": kind})
    hook = preview.hook(tiny_engine, "gen-1")
    assert hook is not None
    tiny_engine.generate(GenerationParams("a fox", seed=3), on_latent=hook)
    frame = preview.frame_for("gen-1")
    steps = len(tiny_engine.timesteps)
    assert frame is not None and frame.step == steps - 1  # the last step is the image itself
    assert preview.frame_for("gen-2") is None  # another job never sees this job's preview
    image = _png(preview.encoded(frame))
    assert max(image.size) == size
    assert preview.encoded(frame) is preview.encoded(frame)  # one PNG per step, however many polls


class CountingDecoder:
    """Stands in for a pipeline with a tiny VAE and records which preview decoder ran."""

    vae_choices = ("full", "tiny")

    def __init__(self) -> None:
        self.tiny_calls = 0

    def decode_latent(self, latent, vae="full"):
        assert vae == "tiny"
        self.tiny_calls += 1
        return np.zeros((16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("tiny_s", "step_s", "tiny_used"), [(None, None, 1), (0.01, 1000.0, 1), (1000.0, 0.01, 0)]
)
def test_tiny_vae_previews_only_within_the_cost_budget(tiny_s, step_s, tiny_used):
    pipeline = CountingDecoder()
    preview = LivePreview(lambda: {})
    preview._tiny_s, preview._step_s = tiny_s, step_s  # what earlier images measured
    hook = preview.hook(pipeline, "gen-1")
    hook(1, 4, np.zeros((1, 4, 2, 2), dtype=np.float32))
    assert pipeline.tiny_calls == tiny_used  # None, None: the first tiny decode is the measurement
    frame = preview.frame_for("gen-1")
    assert frame is not None and frame.pixels.shape == ((16, 16, 3) if tiny_used else (2, 2, 3))


def test_hook_is_off_when_previews_are_disabled(tiny_engine):
    assert LivePreview(lambda: {"live_previews_enable": False}).hook(tiny_engine, "gen-1") is None


def test_progress_carries_the_preview_while_a_batch_runs(tiny_model_dir):
    gated = GatedPipeline(load_tiny(tiny_model_dir))
    app = create_app(make_settings(tiny_model_dir), pipeline=gated)
    with running_server(app) as url, ThreadPoolExecutor(1) as pool:
        idle = httpx.get(f"{url}/sdapi/v1/progress", timeout=10).json()
        assert idle["current_image"] is None
        gated.hold(2)  # the second image waits at its first step: the first one's previews exist
        answer = pool.submit(
            httpx.post, f"{url}/sdapi/v1/txt2img", json={"prompt": "fox", "batch_size": 2}, timeout=60
        )
        assert gated.held.wait(WAIT)
        running = httpx.get(f"{url}/sdapi/v1/progress", timeout=10).json()
        skipped = httpx.get(f"{url}/sdapi/v1/progress?skip_current_image=true", timeout=10).json()
        gated.release()
        assert answer.result(timeout=60).status_code == 200
        after = httpx.get(f"{url}/sdapi/v1/progress", timeout=10).json()
    assert running["state"]["job_count"] == 1
    assert _png(running["current_image"]).size == (128, 128)
    assert skipped["current_image"] is None
    assert after["current_image"] is None  # the job is over: no stale preview


def test_options_route_turns_previews_off(tiny_model_dir):
    gated = GatedPipeline(load_tiny(tiny_model_dir))
    app = create_app(make_settings(tiny_model_dir), pipeline=gated)
    with running_server(app) as url, ThreadPoolExecutor(1) as pool:
        options = httpx.get(f"{url}/sdapi/v1/options", timeout=10).json()
        assert options["live_previews_enable"] is True
        assert options["show_progress_every_n_steps"] == 1
        httpx.post(f"{url}/sdapi/v1/options", json={"live_previews_enable": False}, timeout=10)
        gated.hold(2)
        answer = pool.submit(
            httpx.post, f"{url}/sdapi/v1/txt2img", json={"prompt": "fox", "batch_size": 2}, timeout=60
        )
        assert gated.held.wait(WAIT)
        running = httpx.get(f"{url}/sdapi/v1/progress", timeout=10).json()
        gated.release()
        assert answer.result(timeout=60).status_code == 200
    assert running["state"]["job_count"] == 1
    assert running["current_image"] is None


def test_the_cost_benchmark_runs_and_reports_every_side(tiny_model_dir, tmp_path):
    out = tmp_path / "preview.json"
    script = Path(__file__).resolve().parents[2] / "bench" / "live_preview.py"
    command = [sys.executable, str(script), "--models", str(tiny_model_dir), "-n", "2", "--block", "1"]
    run = subprocess.run([*command, "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for side in ("off", "linear", "tiny", "auto"):
        assert re.search(rf"^\s*{side}: median .* ratio from the hook's own time \d", run.stdout, re.M)
    result = json.loads(out.read_text())
    assert result["ratio_direct"]["off"] == 1.0
    assert set(result["ratio_vs_off"]) == {"off", "linear", "tiny", "auto"}
    assert result["steps"] == 4 and result["images_per_side"] == 2
