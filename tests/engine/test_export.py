"""The export tool: AXERA names and files, manifest hashes, time inputs, LoRA fusing."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from pi_axera_sd.engine.contract import AXERA_TIME_INPUT
from pi_axera_sd.fileio import sha256_file
from pi_axera_sd.modeltools.export_sd import time_embeddings


def test_layout_files_and_tensor_names(tiny_model_dir):
    for name in ("vocab.json", "merges.txt"):
        assert (tiny_model_dir / "tokenizer" / name).is_file()
    unet = onnx.load(str(tiny_model_dir / "unet.onnx"), load_external_data=False)
    assert [i.name for i in unet.graph.input] == ["sample", AXERA_TIME_INPUT, "encoder_hidden_states"]
    # the cut graph has no time_proj / time_embedding nodes left
    assert not [n.name for n in unet.graph.node if "time_embedding" in n.name or "time_proj" in n.name]
    assert (tiny_model_dir / "unet.onnx.data").stat().st_size > 1_000_000  # weights live outside the graph
    vae = onnx.load(str(tiny_model_dir / "vae_encoder.onnx"))
    assert [i.name for i in vae.graph.input] == ["image_sample"]
    dec = onnx.load(str(tiny_model_dir / "vae_decoder.onnx"))
    assert [i.name for i in dec.graph.input] == ["x"]


def test_manifest_hashes_every_file(tiny_model_dir):
    manifest = json.loads((tiny_model_dir / "manifest.json").read_text())
    assert manifest["format"] == "axera-sd15-lcm" and manifest["image_size"] == 128
    assert "unet.onnx.data" in manifest["files"] and "tokenizer/vocab.json" in manifest["files"]
    for rel, meta in manifest["files"].items():
        path = tiny_model_dir / rel
        assert path.stat().st_size == meta["bytes"]
        assert sha256_file(path) == meta["sha256"], rel


def test_time_inputs_are_silu_time_embeddings(tiny_pipe, tiny_model_dir):
    txt2img = np.load(tiny_model_dir / "time_input_txt2img.npy")
    img2img = np.load(tiny_model_dir / "time_input_img2img.npy")
    assert txt2img.shape == img2img.shape == (4, 128) and txt2img.dtype == np.float32
    unet = tiny_pipe.unet
    with torch.no_grad():
        t = torch.tensor([999, 759, 499, 259])
        expected = torch.nn.functional.silu(unet.time_embedding(unet.time_proj(t))).numpy()
    np.testing.assert_allclose(txt2img, expected, atol=1e-6)
    # AXERA's img2img file: rows 0-1 are t=499, 259; rows 2-3 zero
    np.testing.assert_allclose(img2img[:2], txt2img[2:], atol=1e-6)
    assert not img2img[2:].any()
    np.testing.assert_allclose(time_embeddings(unet, [499]), txt2img[2:3], atol=1e-6)


@pytest.mark.slow
def test_lora_is_fused_like_diffusers(tmp_path):
    """export --lora: the engine's image equals diffusers with the same LoRA fused, and differs
    from the base model (so the LoRA really is in the exported UNet)."""
    from test_reference_diffusers import RecordingNoise, replay_noise

    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
    from pi_axera_sd.modeltools.export_sd import export_model, load_diffusers_pipeline
    from pi_axera_sd.modeltools.random_sd import add_random_lora, build_sd_pipeline

    base = build_sd_pipeline("tiny", seed=3)
    base.save_pretrained(str(tmp_path / "src"))
    add_random_lora(base, tmp_path / "lora", rank=4, seed=5)
    manifest = export_model(tmp_path / "src", tmp_path / "out", lora=str(tmp_path / "lora"), name="lora-test")
    assert manifest["lora"] == str(tmp_path / "lora") and manifest["name"] == "lora-test"
    export_model(tmp_path / "src", tmp_path / "plain")

    fused_engine = Pipeline.load(resolve_layout(tmp_path / "out"))
    plain_engine = Pipeline.load(resolve_layout(tmp_path / "plain"))
    noise = RecordingNoise(seed=21)
    ours = fused_engine.generate(GenerationParams("a fox", seed=21), noise=noise)
    plain = plain_engine.generate(GenerationParams("a fox", seed=21))
    assert np.abs(ours.pixels.astype(int) - plain.pixels.astype(int)).max() > 2

    reference_pipe = load_diffusers_pipeline(tmp_path / "src", lora=str(tmp_path / "lora"))
    reference_pipe.set_progress_bar_config(disable=True)
    with replay_noise(noise.draws[1:]):
        ref = reference_pipe(
            prompt="a fox",
            timesteps=[999, 759, 499, 259],
            guidance_scale=1.0,
            latents=torch.from_numpy(noise.draws[0]),
            height=128,
            width=128,
            output_type="pil",
        ).images[0]
    assert np.abs(ours.pixels.astype(int) - np.asarray(ref).astype(int)).max() <= 2
