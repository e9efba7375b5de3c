"""INT8 variants: `models quantize` writes OpenVINO IR that the engine picks with variant=int8."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pi_axera_sd.config import Settings
from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline


@pytest.mark.slow
def test_quantize_writes_int8_variants_the_engine_uses(tiny_model_dir, tiny_engine, tmp_path):
    from pi_axera_sd.modeltools.quantize import quantize_model

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    info = quantize_model(folder, prompts=["a fox", "a city at night"])
    # 2 prompts x (4 txt2img steps + 2 img2img steps); one final latent per image
    assert info["components"]["unet"]["calibration_samples"] == 12
    assert info["components"]["vae_decoder"]["calibration_samples"] == 4
    assert (folder / "unet.int8.xml").is_file() and (folder / "unet.int8.bin").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["variants"]["int8"]["components"]["unet"]["file"] == "unet.int8.xml"

    layout = Settings(models_dir=folder, variant="int8").model_layout()
    assert layout.unet.name == "unet.int8.xml" and layout.vae_decoder.name == "vae_decoder.int8.xml"
    assert resolve_layout(folder).unet.name == "unet.onnx"  # FP32 stays the default
    int8 = Pipeline.load(layout)
    assert int8.unet.runtime == "openvino" and int8.vae_decoder.runtime == "openvino"

    rng = np.random.default_rng(0)
    latent = rng.standard_normal(int8.latent_shape, dtype=np.float32)
    hidden = tiny_engine.encode_prompt("a fox")
    ref = tiny_engine.predict_noise(latent, 499, hidden)
    got = int8.predict_noise(latent, 499, hidden)
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert 0 < rel < 0.25, rel  # quantised (not bit-identical) but still the same function
    image = int8.generate(GenerationParams("a fox", seed=2)).pixels
    assert image.shape == (128, 128, 3)
