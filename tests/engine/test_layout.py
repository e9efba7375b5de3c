"""Model layout resolution, environment overrides and clear errors for missing or wrong files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pi_axera_sd.config import Settings
from pi_axera_sd.engine.contract import AXERA_TIME_INPUT
from pi_axera_sd.engine.layout import check_layout, resolve_layout
from pi_axera_sd.engine.pipeline import Pipeline
from pi_axera_sd.errors import ModelError
from pi_axera_sd.wiring import model_layout


def test_default_layout_finds_every_component(tiny_model_dir):
    layout = resolve_layout(tiny_model_dir)
    check_layout(layout)
    assert layout.text_encoder == tiny_model_dir / "text_encoder" / "sd15_text_encoder_sim.onnx"
    assert layout.unet.name == "unet.onnx" and layout.vae_encoder.name == "vae_encoder.onnx"
    assert layout.tokenizer_dir == tiny_model_dir / "tokenizer"
    assert layout.name == "tiny-sd15-lcm" and layout.timesteps == (999, 759, 499, 259)


def test_seed_environment_variables_override_each_path(tiny_model_dir, tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(tiny_model_dir / "vae_decoder.onnx", moved / "decoder.onnx")
    text_dir = tmp_path / "text"
    shutil.copytree(tiny_model_dir / "text_encoder", text_dir / "text_encoder")
    shutil.copytree(tiny_model_dir / "tokenizer", text_dir / "tokenizer")
    monkeypatch.setenv("MODELS_DIR", str(tiny_model_dir))
    monkeypatch.setenv("TEXT_MODEL_DIR", str(text_dir))
    monkeypatch.setenv("VAE_DECODER_MODEL", str(moved / "decoder.onnx"))
    monkeypatch.setenv("TIME_INPUT_TXT2IMG", str(tiny_model_dir / "time_input_txt2img.npy"))
    layout = model_layout(Settings())
    assert layout.vae_decoder == moved / "decoder.onnx"
    assert layout.text_encoder == text_dir / "text_encoder" / "sd15_text_encoder_sim.onnx"
    assert layout.tokenizer_dir == text_dir / "tokenizer"
    assert layout.unet == tiny_model_dir / "unet.onnx"
    Pipeline.load(layout)  # and the mixed folder loads


def test_axmodel_preferred_only_when_asked(tmp_path):
    (tmp_path / "unet.onnx").write_bytes(b"x")
    (tmp_path / "unet.axmodel").write_bytes(b"x")
    assert resolve_layout(tmp_path, prefer_axmodel=True).unet.suffix == ".axmodel"
    assert resolve_layout(tmp_path, prefer_axmodel=False).unet.suffix == ".onnx"
    (tmp_path / "unet.onnx").unlink()
    assert resolve_layout(tmp_path, prefer_axmodel=False).unet.suffix == ".axmodel"


def test_missing_files_are_each_named(tmp_path):
    with pytest.raises(ModelError) as err:
        check_layout(resolve_layout(tmp_path))
    message = str(err.value)
    for name in ("sd15_text_encoder_sim.onnx", "unet.onnx", "vae_decoder.onnx"):
        assert name in message
    assert "vocab.json" not in message  # no tokenizer folder: the packaged CLIP BPE files serve
    assert "pi-axera-sd models pull" in message  # an empty folder: say how to get a model


def test_explicit_missing_override_is_reported(tiny_model_dir, tmp_path):
    layout = resolve_layout(tiny_model_dir, overrides={"vae_encoder": tmp_path / "nope.onnx"})
    with pytest.raises(ModelError, match=r"VAE encoder .*nope\.onnx"):
        check_layout(layout)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_wrong_component_file_is_rejected_with_expectation(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    shutil.copy(folder / "vae_encoder.onnx", folder / "vae_decoder.onnx")
    with pytest.raises(ModelError, match=r"vae_decoder\.onnx: expected a VAE decoder.*image_sample"):
        Pipeline.load(resolve_layout(folder))


def test_text_encoder_in_place_of_unet(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / "unet.onnx").unlink()
    (folder / "unet.onnx.data").unlink()
    shutil.copy(folder / "text_encoder" / "sd15_text_encoder_sim.onnx", folder / "unet.onnx")
    with pytest.raises(ModelError, match=r"unet\.onnx: not an SD UNet signature.*input_ids"):
        Pipeline.load(resolve_layout(folder))


def test_time_input_of_the_wrong_shape(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    np.save(folder / "time_input_txt2img.npy", np.zeros((4, 1280), np.float32))
    with pytest.raises(
        ModelError, match=r"time_input_txt2img\.npy has shape \[4, 1280\]; expected \[4, 128\]"
    ):
        Pipeline.load(resolve_layout(folder))
    (folder / "time_input_txt2img.npy").unlink()
    with pytest.raises(ModelError) as err:
        Pipeline.load(resolve_layout(folder))
    message = str(err.value)
    assert f"{folder / 'time_input_txt2img.npy'} is missing (layout tried: AXERA" in message
    assert f"({AXERA_TIME_INPUT})" in message and "TIME_INPUT_TXT2IMG" in message
    assert "models pull" not in message


def test_corrupt_model_file(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / "vae_decoder.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"vae_decoder\.onnx: ONNX Runtime could not load"):
        Pipeline.load(resolve_layout(folder))


def test_img2img_without_vae_encoder(tiny_model_dir, tmp_path):
    from pi_axera_sd.engine.pipeline import GenerationParams
    from pi_axera_sd.errors import InvalidInput

    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / "vae_encoder.onnx").unlink()
    pipeline = Pipeline.load(resolve_layout(folder))
    assert not pipeline.supports_img2img
    init = np.zeros((1, 3, 128, 128), np.float32)
    with pytest.raises(InvalidInput, match="img2img needs vae_encoder"):
        pipeline.generate(GenerationParams("x", seed=1, init_image=init))
