"""The pi-axera-sd command as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from PIL import Image

from pi_axera_sd.engine.imageio import read_png_parameters
from pi_axera_sd.engine.infotext import parse_infotext


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pi_axera_sd", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_generate_txt2img_prints_seed_and_timings(tiny_model_dir, tmp_path):
    out = tmp_path / "fox.png"
    run = _cli("generate", "--prompt", "a red fox, snow", "--models", str(tiny_model_dir), "-o", str(out))
    assert run.returncode == 0, run.stderr
    seed = int(re.search(r"^seed: (\d+)$", run.stdout, re.M).group(1))
    for stage in ("text encoder", "unet step 1", "unet step 4", "vae decoder", "total"):
        assert re.search(rf"^{stage}: [\d.]+ ms$", run.stdout, re.M), stage
    text, _ = read_png_parameters(out.read_bytes())
    info = parse_infotext(text)
    assert info["Prompt"] == "a red fox, snow" and info["Seed"] == seed and info["Steps"] == 4
    assert info["Sampler"] == "LCM" and info["Size"] == "128x128" and info["Model"] == "tiny-sd15-lcm"
    assert Image.open(out).size == (128, 128)


def test_generate_reads_the_prompt_language_and_guidance(tiny_model_dir, tmp_path):
    out = tmp_path / "guided.png"
    run = _cli(
        "generate",
        "--prompt",
        "a (red:1.2) fox <lora:fox:0.5>",
        "--negative-prompt",
        "blurry",
        "--cfg-scale",
        "3",
        "--seed",
        "5",
        "--models",
        str(tiny_model_dir),
        "-o",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    warnings = re.findall(r"^warning: (.*)$", run.stdout, re.M)
    assert any("cfg_scale 3 lowered to 2" in w for w in warnings)
    assert any("<lora:fox:0.5> not applied" in w for w in warnings)
    info = parse_infotext(read_png_parameters(out.read_bytes())[0])
    assert info["CFG scale"] == 2 and info["Negative prompt"] == "blurry"


def test_generate_img2img_with_fixed_seed(tiny_model_dir, tmp_path):
    init = tmp_path / "init.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200, 3), np.uint8)).save(init)
    outs = []
    for name in ("a.png", "b.png"):
        run = _cli(
            "generate",
            "--prompt",
            "sketch",
            "--init-image",
            str(init),
            "--strength",
            "0.5",
            "--resize-mode",
            "1",
            "--seed",
            "77",
            "--models",
            str(tiny_model_dir),
            "-o",
            str(tmp_path / name),
        )
        assert run.returncode == 0, run.stderr
        assert "seed: 77" in run.stdout and "steps: 2" in run.stdout and "vae encoder:" in run.stdout
        outs.append(np.asarray(Image.open(tmp_path / name)))
    assert np.array_equal(outs[0], outs[1])
    info = parse_infotext(read_png_parameters((tmp_path / "a.png").read_bytes())[0])
    assert info["Denoising strength"] == 0.5


def test_missing_models_exit_2_with_instructions(tmp_path):
    run = _cli("generate", "--prompt", "x", "--models", str(tmp_path / "none"))
    assert run.returncode == 2
    assert "model files missing" in run.stderr and "pi-axera-sd models pull" in run.stderr
    assert "Traceback" not in run.stderr


def test_bad_init_image_is_a_clear_error(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"definitely not an image")
    run = _cli("generate", "--prompt", "x", "--init-image", str(bad), "--models", str(tiny_model_dir))
    assert run.returncode == 2 and "error:" in run.stderr and "Traceback" not in run.stderr
