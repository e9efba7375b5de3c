"""DeepCache on the tiny model: the exported pair, the engine's schedule against a torch reference
built from diffusers' own UNet, and the setting (off by default, refused when the files are missing)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from test_reference_diffusers import MAX_PIXEL_DIFF, RecordingNoise, _max_diff, diffusers_txt2img

from pi_axera_sd.defaults import TXT2IMG_TIMESTEPS
from pi_axera_sd.engine.contract import AXERA_TIME_INPUT, DEEP_FEATURE
from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
from pi_axera_sd.errors import ModelError
from pi_axera_sd.wiring import model_layout


@pytest.fixture(scope="module")
def deep_dir(tiny_pipe, tiny_taesd, tmp_path_factory) -> Path:
    from pi_axera_sd.modeltools.export_sd import export_pipeline

    out = tmp_path_factory.mktemp("tiny-deepcache")
    export_pipeline(tiny_pipe, out, name="tiny-deepcache", tiny_vae=tiny_taesd, deep_cache=True)
    return out


@pytest.fixture(scope="module")
def deep_engine(deep_dir) -> Pipeline:
    return Pipeline.load(resolve_layout(deep_dir), deep_cache=2)


def _count_runs(monkeypatch, session) -> list[int]:
    calls: list[int] = []
    real = session.run
    monkeypatch.setattr(session, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_shallow_graph_with_the_same_steps_feature_reproduces_the_full_unet(deep_dir):
    full, deep, shallow = (
        ort.InferenceSession(str(deep_dir / f"{name}.onnx")) for name in ("unet", "unet_deep", "unet_shallow")
    )
    rng = np.random.default_rng(3)
    rows = np.load(deep_dir / "time_input_txt2img.npy")
    for row in range(len(TXT2IMG_TIMESTEPS)):
        feeds = {
            "sample": rng.standard_normal((1, 4, 16, 16), dtype=np.float32),
            AXERA_TIME_INPUT: rows[row : row + 1],
            "encoder_hidden_states": rng.standard_normal((1, 77, 32), dtype=np.float32),
        }
        (expected,) = full.run(None, feeds)
        out, feature = deep.run(None, feeds)
        (again,) = shallow.run(None, {**feeds, DEEP_FEATURE: feature})
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(again, expected, rtol=0, atol=1e-5)
        # the shallow output really depends on the feature: another one gives another result
        (other,) = shallow.run(None, {**feeds, DEEP_FEATURE: np.zeros_like(feature)})
        assert np.abs(other - expected).max() > 1e-3


@contextmanager
def reference_deep_cache(unet, interval: int):
    """diffusers' own UNet forward with DeepCache's schedule: on reuse calls the last up block's
    input is replaced by the one kept from the last full call (the deep branch still runs, unused)."""
    state: dict[str, object] = {"call": 0}

    def swap(_module, args, kwargs):
        step = state["call"]
        state["call"] = step + 1
        if step % interval == 0:
            state["feature"] = kwargs["hidden_states"]
            return None
        return args, {**kwargs, "hidden_states": state["feature"]}

    handle = unet.up_blocks[-1].register_forward_pre_hook(swap, with_kwargs=True)
    try:
        yield state
    finally:
        handle.remove()


def test_engine_with_reuse_matches_a_diffusers_reference_of_the_same_schedule(
    tiny_pipe, deep_engine, monkeypatch
):
    shallow_calls = _count_runs(monkeypatch, deep_engine.unet_shallow)
    deep_calls = _count_runs(monkeypatch, deep_engine.unet)
    noise = RecordingNoise(seed=21)
    ours = deep_engine.generate(GenerationParams(prompt="a lighthouse", seed=21), noise=noise)
    assert (len(deep_calls), len(shallow_calls)) == (2, 2)  # full, reuse, full, reuse
    size = (deep_engine.height, deep_engine.width)
    with reference_deep_cache(tiny_pipe.unet, 2) as state:
        ref = diffusers_txt2img(tiny_pipe, "a lighthouse", noise, *size)
    assert state["call"] == 4
    diff = _max_diff(ours.pixels, ref)
    print(f"DeepCache (interval 2) max pixel diff vs the diffusers reference: {diff}/255")
    assert diff <= MAX_PIXEL_DIFF
    # reuse changed the result: the comparison above could tell the schedules apart
    assert _max_diff(ref, diffusers_txt2img(tiny_pipe, "a lighthouse", noise, *size)) > MAX_PIXEL_DIFF


def test_img2img_reuses_on_its_second_step(deep_engine, monkeypatch):
    shallow_calls = _count_runs(monkeypatch, deep_engine.unet_shallow)
    rng = np.random.default_rng(1)
    init = rng.uniform(-1, 1, (1, 3, deep_engine.height, deep_engine.width)).astype(np.float32)
    result = deep_engine.generate(GenerationParams("x", seed=2, init_image=init, strength=0.5, vae="tiny"))
    assert len(result.timesteps) == 2 and len(shallow_calls) == 1


def test_off_by_default_loads_and_runs_the_plain_unet_only(deep_dir, deep_engine):
    from pi_axera_sd.config import Settings

    assert Settings().deep_cache == 0
    layout = resolve_layout(deep_dir)
    plain = Pipeline.load(layout)
    assert plain.unet_shallow is None and "unet_shallow" not in plain.sessions
    assert Path(plain.unet.path).name == "unet.onnx"
    assert Path(deep_engine.unet.path).name == "unet_deep.onnx"  # reuse on: unet.onnx is not opened
    params = GenerationParams(prompt="a lighthouse", seed=4)
    assert np.array_equal(plain.generate(params).pixels, Pipeline.load(layout).generate(params).pixels)
    assert not np.array_equal(plain.generate(params).pixels, deep_engine.generate(params).pixels)


def test_reuse_on_without_the_pair_names_the_export_option(tiny_model_dir):
    with pytest.raises(ModelError, match="--deep-cache"):
        Pipeline.load(resolve_layout(tiny_model_dir), deep_cache=2)


@pytest.mark.slow
def test_quantize_writes_int8_variants_of_the_pair(deep_dir, deep_engine, tmp_path):
    import shutil

    from pi_axera_sd.config import Settings
    from pi_axera_sd.modeltools.quantize import DEEP_CACHE_COMPONENTS, quantize_model

    folder = tmp_path / "m"
    shutil.copytree(deep_dir, folder)
    with pytest.raises(ValueError, match="separate runs"):
        quantize_model(folder, components=("unet", "unet_deep"), prompts=["a fox"])
    info = quantize_model(folder, components=DEEP_CACHE_COMPONENTS, prompts=["a fox"])
    # txt2img full, reuse, full, reuse + img2img full, reuse: three feeds each
    assert info["components"]["unet_deep"]["calibration_samples"] == 3
    assert info["components"]["unet_shallow"]["calibration_samples"] == 3
    settings = Settings(models_dir=folder, variant="int8", deep_cache=2)
    layout = model_layout(settings)
    assert (layout.unet_deep.name, layout.unet_shallow.name) == (
        "unet_deep.int8.xml",
        "unet_shallow.int8.xml",
    )
    int8 = Pipeline.load(layout, deep_cache=settings.deep_cache)
    assert int8.unet.runtime == "openvino" and int8.unet_shallow.runtime == "openvino"
    ours = int8.generate(GenerationParams("a fox", seed=2)).pixels
    ref = deep_engine.generate(GenerationParams("a fox", seed=2)).pixels
    mse = np.mean((ours.astype(np.float64) - ref.astype(np.float64)) ** 2)
    assert 0 < mse < np.mean((ref.astype(np.float64) - 127.5) ** 2)  # quantised, still the same image
