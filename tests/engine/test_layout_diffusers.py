"""The diffusers/optimum per-component layout: the engine against diffusers' LCM pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_reference_diffusers import MAX_PIXEL_DIFF, RecordingNoise, _max_diff, replay_noise

from pi_axera_sd.defaults import TXT2IMG_TIMESTEPS
from pi_axera_sd.engine.guidance import DEFAULT_GUIDANCE_SCALE, guidance_embedding
from pi_axera_sd.engine.layout import check_layout, resolve_layout
from pi_axera_sd.engine.layout_diffusers import is_diffusers_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
from pi_axera_sd.runtime import RuntimeOptions


@pytest.mark.parametrize("dim", [32, 256, 33])
def test_guidance_embedding_is_diffusers(tiny_lcm_pipe, dim):
    w = torch.tensor([7.5 - 1.0])
    ref = tiny_lcm_pipe.get_guidance_scale_embedding(w, embedding_dim=dim).numpy()
    # float32 sin/cos of arguments up to 6500 rad: one ulp of the frequency moves them ~4e-4
    np.testing.assert_allclose(guidance_embedding(7.5, dim), ref, atol=1e-3)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_layout_is_recognised(fmt, tiny_optimum_onnx_dir, tiny_optimum_ov_dir):
    root = tiny_optimum_onnx_dir if fmt == "onnx" else tiny_optimum_ov_dir
    assert is_diffusers_layout(root)
    layout = resolve_layout(root)
    suffix = ".onnx" if fmt == "onnx" else ".xml"
    assert layout.unet == root / "unet" / f"{'model' if fmt == 'onnx' else 'openvino_model'}{suffix}"
    assert layout.vae_encoder is not None and layout.time_input_txt2img is None
    assert layout.manifest["time_cond_proj_dim"] == 32 and layout.manifest["sample_size"] == 16
    assert layout.name == "tiny-lcm"
    check_layout(layout)


def _agreement(pipe, engine: Pipeline, prompt: str, guidance: float) -> int:
    noise = RecordingNoise(seed=4321)
    ours = engine.generate(GenerationParams(prompt=prompt, seed=4321), noise=noise)
    assert ours.timesteps == TXT2IMG_TIMESTEPS
    with replay_noise(noise.draws[1:]):
        ref = pipe(
            prompt=prompt,
            num_inference_steps=4,
            timesteps=list(TXT2IMG_TIMESTEPS),
            guidance_scale=guidance,
            latents=torch.from_numpy(noise.draws[0]),
            height=engine.height,
            width=engine.width,
            output_type="pil",
        ).images[0]
    ref_pixels = np.asarray(ref)
    assert ref_pixels.shape == ours.pixels.shape == (128, 128, 3)
    assert ours.pixels.std() > 5, "degenerate image: the comparison would prove nothing"
    return _max_diff(ours.pixels, ref_pixels)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_txt2img_matches_diffusers_lcm_pipeline(
    tiny_lcm_pipe, tiny_optimum_onnx_dir, tiny_optimum_ov_dir, fmt
):
    root = tiny_optimum_onnx_dir if fmt == "onnx" else tiny_optimum_ov_dir
    # f32: OpenVINO's CPU default may be bf16 where the CPU has it, which is not what is compared here
    engine = Pipeline.load(resolve_layout(root), RuntimeOptions(precision="f32"))
    assert engine.unet.runtime == ("onnxruntime" if fmt == "onnx" else "openvino")
    assert engine.guidance_scale == DEFAULT_GUIDANCE_SCALE
    diff = _agreement(tiny_lcm_pipe, engine, "a watercolor of a lighthouse at dusk", DEFAULT_GUIDANCE_SCALE)
    print(f"diffusers-layout {fmt}: max pixel diff vs LatentConsistencyModelPipeline {diff}/255")
    assert diff <= MAX_PIXEL_DIFF


def test_guidance_scale_from_the_config_and_from_a_setting(tiny_lcm_pipe, tiny_optimum_onnx_dir, tmp_path):
    import shutil

    root = shutil.copytree(tiny_optimum_onnx_dir, tmp_path / "model")
    index = json.loads((root / "model_index.json").read_text())
    (root / "model_index.json").write_text(json.dumps({**index, "guidance_scale": 3.0}))
    from_config = Pipeline.load(resolve_layout(root))
    assert from_config.guidance_scale == 3.0
    assert _agreement(tiny_lcm_pipe, from_config, "a fox", 3.0) <= MAX_PIXEL_DIFF
    setting = Pipeline.load(resolve_layout(root), guidance_scale=12.0)
    assert setting.guidance_scale == 12.0
    a = from_config.generate(GenerationParams(prompt="a fox", seed=1)).pixels
    b = setting.generate(GenerationParams(prompt="a fox", seed=1)).pixels
    assert _max_diff(a, b) > 0, "the guidance embedding must reach the UNet"


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_models_verify_understands_the_layout(fmt, tiny_optimum_onnx_dir, tiny_optimum_ov_dir):
    import subprocess
    import sys
    from pathlib import Path

    root = tiny_optimum_onnx_dir if fmt == "onnx" else tiny_optimum_ov_dir
    cli = Path(sys.executable).with_name("pi-axera-sd")
    run = subprocess.run(
        [str(cli), "models", "verify", str(root), "--json"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["ok"]
    assert "timestep_cond" in report["model"]["unet_time_input"]
    rows = {c["component"]: c for c in report["components"]}
    assert rows["unet"]["state"] == "OK" and rows["vae_encoder"]["state"] == "OK"
    assert rows["time_input_txt2img"]["state"] == "absent"
    # today's exports hold tokenizer.json alone; verify names the form it read
    assert sorted(p.name for p in (root / "tokenizer").iterdir()) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert rows["tokenizer"]["state"] == "OK" and rows["tokenizer"]["note"] == "from tokenizer.json"


def test_a_vae_encoder_that_returns_a_latent_sample_works_for_img2img(
    tiny_lcm_pipe, tiny_optimum_onnx_dir, tmp_path
):
    """Older optimum exports' encoders output ``latent_sample`` (4 channels), not mean || logvar."""
    import shutil

    from pi_axera_sd.modeltools.onnx_io import export_module

    root = shutil.copytree(tiny_optimum_onnx_dir, tmp_path / "model")
    vae = tiny_lcm_pipe.vae

    class SampleEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, sample):
            return self.vae.encode(sample).latent_dist.mean  # deterministic stand-in for a drawn sample

    export_module(
        SampleEncoder(),
        (torch.randn(1, 3, 128, 128),),
        root / "vae_encoder" / "model.onnx",
        ["sample"],
        ["latent_sample"],
    )
    from pi_axera_sd.modeltools.verify import verify_model

    assert verify_model(root).ok, verify_model(root).render()
    engine = Pipeline.load(resolve_layout(root))
    assert engine.vae_encoder.outputs[0].shape[1] == 4 and engine.supports_img2img
    image = np.random.default_rng(0).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        expected = vae.encode(torch.from_numpy(image)).latent_dist.mean.numpy() * vae.config.scaling_factor
    np.testing.assert_allclose(engine.encode_image(image, lambda shape: None), expected, atol=1e-4)
    out = engine.generate(GenerationParams(prompt="a boat", seed=2, init_image=image, strength=0.5))
    assert out.pixels.shape == (128, 128, 3)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_img2img_matches_diffusers_lcm_img2img_pipeline(tiny_lcm_pipe, tiny_optimum_onnx_dir, strength):
    from unittest import mock

    from diffusers import LatentConsistencyModelImg2ImgPipeline
    from PIL import Image

    from pi_axera_sd.engine.imageio import to_model_input

    engine = Pipeline.load(resolve_layout(tiny_optimum_onnx_dir))
    pipe = LatentConsistencyModelImg2ImgPipeline(**tiny_lcm_pipe.components)
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(11)
    init = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    noise = RecordingNoise(seed=5)
    ours = engine.generate(
        GenerationParams(prompt="a castle", seed=5, init_image=to_model_input(init), strength=strength),
        noise=noise,
    )
    module = "diffusers.pipelines.latent_consistency_models.pipeline_latent_consistency_img2img.randn_tensor"
    with (
        replay_noise(noise.draws) as queue,
        mock.patch(module, lambda *a, **k: torch.from_numpy(queue.pop(0))),
    ):
        ref = pipe(
            prompt="a castle",
            image=init,
            num_inference_steps=len(ours.timesteps),
            timesteps=list(ours.timesteps),  # the engine's tail of the 4-step schedule
            strength=1.0,
            guidance_scale=DEFAULT_GUIDANCE_SCALE,
            output_type="pil",
        ).images[0]
    assert ours.pixels.std() > 5, "degenerate image: the comparison would prove nothing"
    diff = _max_diff(ours.pixels, np.asarray(ref))
    print(f"diffusers-layout img2img strength={strength}: max pixel diff vs LCM img2img pipeline {diff}/255")
    assert diff <= MAX_PIXEL_DIFF
