"""Every layout of the reference table ("Layouts found in the wild") loads, as ONNX or as
.axmodel through the pyaxengine stand-in, and a missing file is named with the layout tried."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pi_axera_sd.config import Settings
from pi_axera_sd.engine.layout import LAYOUT_AXERA, LAYOUT_FLAT, check_layout, resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
from pi_axera_sd.errors import ModelError
from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir
from pi_axera_sd.wiring import model_layout, runtime_options
from support import fake_axengine

PROMPT = GenerationParams("a lighthouse at dusk", seed=11)


def _as_axmodels(folder: Path) -> Path:
    """Every graph as .axmodel only (ONNX bytes the stand-in runs); the UNet keeps its weight file."""
    for onnx_file in list(folder.rglob("*.onnx")):
        onnx_file.rename(onnx_file.with_suffix(".axmodel"))
    return folder


def _flatten(folder: Path, keep_tokenizer: bool = False) -> Path:
    """The export scripts' output: the text encoder at the root, often no tokenizer/."""
    for f in (folder / "text_encoder").iterdir():
        f.rename(folder / f.name)
    (folder / "text_encoder").rmdir()
    if not keep_tokenizer:
        shutil.rmtree(folder / "tokenizer")
    return folder


def _same_image(layout, reference, options=None) -> Pipeline:
    pipeline = Pipeline.load(layout, options)
    assert np.array_equal(pipeline.generate(PROMPT).pixels, reference.generate(PROMPT).pixels)
    return pipeline


@pytest.fixture
def npu(monkeypatch):
    fake_axengine.install(monkeypatch)
    return fake_axengine


def test_axera_run_scripts_layout_as_axmodels(tiny_model_dir, tiny_engine, tmp_path, npu):
    folder = _as_axmodels(shutil.copytree(tiny_model_dir, tmp_path / "python" / "models"))
    layout = model_layout(Settings(models_dir=folder, runtime="axengine"))
    assert layout.kind == LAYOUT_AXERA and layout.tokenizer_dir == folder / "tokenizer"
    pipeline = _same_image(layout, tiny_engine, runtime_options(Settings(runtime="axengine")))
    assert {s.runtime for s in pipeline.sessions.values()} == {"axengine"}


def test_hugging_face_clone_with_everything_under_models(
    tiny_model_dir, tiny_engine, tmp_path, npu, monkeypatch
):
    monkeypatch.setenv("PI_AXERA_SD_RUNTIME", "auto")  # conftest pins onnxruntime; this is about auto
    repo = tmp_path / "lcm-lora-sdv1-5"
    models = shutil.copytree(tiny_model_dir, repo / "models")
    shutil.copy(models / "vae_decoder.onnx", models / "vae_decoder.axmodel")  # the repo has both
    layout = model_layout(Settings(models_dir=repo, runtime="auto"))  # pointed at the clone's root
    assert layout.root == models
    assert layout.vae_decoder == models / "vae_decoder.axmodel"  # pyaxengine usable: NPU file first
    assert layout.unet == models / "unet.onnx"
    _same_image(layout, tiny_engine)


def test_resolution_variants_are_listed_when_none_is_at_the_root(tiny_model_dir, tmp_path):
    repo = tmp_path / "variants"
    for name in ("models_320x320", "models_256x256"):
        shutil.copytree(tiny_model_dir, repo / name)
    with pytest.raises(ModelError) as err:
        check_layout(resolve_layout(repo))
    message = str(err.value)
    assert "models_256x256" in message and "models_320x320" in message and "MODELS_DIR" in message
    assert "models pull" not in message
    # with models/ present (the repo's default resolution) the root resolves to it
    shutil.copytree(tiny_model_dir, repo / "models")
    assert resolve_layout(repo).root == repo / "models"


def test_flat_export_without_tokenizer_uses_the_packaged_one(tiny_model_dir, tiny_engine, tmp_path):
    folder = _flatten(shutil.copytree(tiny_model_dir, tmp_path / "flat"))
    layout = resolve_layout(folder)
    check_layout(layout)
    assert layout.kind == LAYOUT_FLAT
    assert layout.text_encoder == folder / "sd15_text_encoder_sim.onnx"
    assert layout.tokenizer_packaged and layout.tokenizer_dir == packaged_tokenizer_dir()
    _same_image(layout, tiny_engine)


def test_flat_folder_with_its_own_tokenizer(tiny_model_dir, tmp_path):
    folder = _flatten(shutil.copytree(tiny_model_dir, tmp_path / "flat"), keep_tokenizer=True)
    layout = resolve_layout(folder)
    assert layout.kind == LAYOUT_FLAT and layout.tokenizer_dir == folder / "tokenizer"
    assert not layout.tokenizer_packaged


def test_fine_tune_plan_flat_axmodels_only(tiny_model_dir, tiny_engine, tmp_path, npu):
    folder = _as_axmodels(_flatten(shutil.copytree(tiny_model_dir, tmp_path / "realistic")))
    for npy in folder.glob("*.npy"):
        npy.rename(tmp_path / npy.name)  # the plan ships no time-input files
    options = runtime_options(Settings(runtime="axengine"))
    layout = resolve_layout(folder, prefer_axmodel=True)
    assert layout.kind == LAYOUT_FLAT and layout.unet.name == "unet.axmodel"
    with pytest.raises(ModelError) as err:
        Pipeline.load(layout, options)
    message = str(err.value)
    assert f"{folder / 'time_input_txt2img.npy'} is missing (layout tried: {LAYOUT_FLAT})" in message
    assert "models pull" not in message  # the user clearly has a model
    shutil.copy(tmp_path / "time_input_txt2img.npy", folder)
    _same_image(resolve_layout(folder, prefer_axmodel=True), tiny_engine, options)


def test_missing_unet_in_a_real_model_folder_names_file_and_layout(tiny_model_dir, tmp_path):
    folder = _flatten(shutil.copytree(tiny_model_dir, tmp_path / "flat"))
    (folder / "unet.onnx").unlink()
    with pytest.raises(ModelError) as err:
        check_layout(resolve_layout(folder))
    message = str(err.value)
    assert f"UNet {folder / 'unet.onnx'}" in message and f"layout tried: {LAYOUT_FLAT}" in message
    assert "models pull" not in message


def test_stale_img2img_time_input_is_only_a_warning(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(tiny_model_dir))
    monkeypatch.setenv("TIME_INPUT_IMG2IMG", str(tmp_path / "gone" / "time_input_img2img.npy"))
    layout = model_layout(Settings())
    check_layout(layout)  # nothing reads that file: no start-up failure
    assert layout.time_input_img2img is None
    assert any("TIME_INPUT_IMG2IMG" in w and "ignored" in w for w in layout.warnings)


def test_clip_towers_at_text_model_dir_root_are_found(clip_exports, tmp_path):
    """The original service kept the CLIP files at TEXT_MODEL_DIR's root (default: the model folder)."""
    from pi_axera_sd.interrogate.loading import find_clip_dir, load_interrogator

    text_dir = shutil.copytree(clip_exports["split"], tmp_path / "text")
    settings = Settings(
        models_dir=tmp_path / "models",
        text_model_dir=text_dir,
        clip_dir=tmp_path / "models" / "clip",  # the default place is empty
        embedding_cache_dir=tmp_path / "cache",
        runtime="onnxruntime",
    )
    assert find_clip_dir(settings) == text_dir
    assert load_interrogator(settings, warm=False) is not None  # interrogation is on, not silently off
    models_root = shutil.copytree(clip_exports["split"], tmp_path / "seed-models")
    assert find_clip_dir(Settings(models_dir=models_root, clip_dir=tmp_path / "none")) == models_root
