"""INT8 variants: `models quantize` writes OpenVINO IR that the engine picks with variant=int8."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from pi_axera_sd.config import Settings
from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
from pi_axera_sd.modeltools.quantize import image_psnr
from pi_axera_sd.runtime import RuntimeOptions
from pi_axera_sd.wiring import model_layout

BUDGET_DB = 20.0  # the tiny model's plain INT8 VAE: 24-30 dB on its calibration samples


@pytest.mark.slow
def test_quantize_writes_int8_variants_the_engine_uses(tiny_model_dir, tiny_engine, tmp_path):
    from pi_axera_sd.modeltools.quantize import quantize_model

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    components = ("unet", "vae_decoder", "vae_encoder")
    # no PSNR budget (the default): the VAE's PSNR is measured and recorded; the budget's layer
    # ranking has its own test below, on a graph small enough to rank quickly
    info = quantize_model(folder, components, prompts=["a fox", "a city at night"])
    # 2 prompts x (4 txt2img steps + 2 img2img steps); one final latent per image; one init image
    assert info["components"]["unet"]["calibration_samples"] == 12
    assert info["components"]["vae_decoder"]["calibration_samples"] == 4
    assert info["components"]["vae_encoder"]["calibration_samples"] == 2
    for vae in ("vae_decoder", "vae_encoder"):  # INT8, not exact, and not far off
        assert BUDGET_DB <= info["components"][vae]["psnr_db"] < 60, info["components"][vae]
        assert "budget_met" not in info["components"][vae]
    assert (folder / "unet.int8.xml").is_file() and (folder / "unet.int8.bin").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["variants"]["int8"]["components"]["unet"]["file"] == "unet.int8.xml"

    layout = model_layout(Settings(models_dir=folder, variant="int8"))
    assert layout.unet.name == "unet.int8.xml" and layout.vae_decoder.name == "vae_decoder.int8.xml"
    assert layout.vae_encoder.name == "vae_encoder.int8.xml"
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

    # the VAE on inputs the calibration never saw: still within the budget's reach of FP32
    fp32 = Pipeline.load(resolve_layout(folder), RuntimeOptions(runtime="openvino", precision="f32"))
    init = fp32.prepare_image(Image.fromarray(image), 0)
    params = GenerationParams("a lighthouse on a cliff", seed=7, init_image=init, strength=0.5)
    for name in ("vae_decoder", "vae_encoder"):
        feed = _feed_of(fp32, name, params)
        ref, got = (getattr(p, name).run(feed)[0] for p in (fp32, int8))
        assert image_psnr(got, ref) >= BUDGET_DB - 3.0, name


def _feed_of(pipeline: Pipeline, name: str, params: GenerationParams) -> dict:
    """What ``pipeline`` fed its session ``name`` while making ``params``' image."""
    session, seen = getattr(pipeline, name), []
    original = session.run
    session.run = lambda feed, outputs=None: seen.append(feed) or original(feed, outputs)
    try:
        pipeline.generate(params)
    finally:
        session.run = original
    return seen[-1]


def test_image_psnr_is_over_the_clipped_image_and_capped():
    from pi_axera_sd.modeltools.quantize import PSNR_CAP_DB, image_psnr

    reference = np.linspace(-1, 1, 1000, dtype=np.float32)
    assert image_psnr(reference, reference) == PSNR_CAP_DB
    # peak 2, error 0.02 everywhere: 20 log10(2 / 0.02) = 40 dB (a uint8 image: 255 / 2.55)
    inside = reference * 0.9
    assert image_psnr(inside + 0.02, inside) == pytest.approx(40.0, abs=1e-3)
    # what the engine clips away costs nothing: values past 1 show as 1
    past = np.array([1.5, -2.0, 3.0, 0.5])
    assert image_psnr(past, np.clip(past, -1, 1)) == PSNR_CAP_DB


def test_quantize_refuses_a_component_the_folder_lacks_before_calibrating(tiny_model_dir, tmp_path):
    from pi_axera_sd.errors import ModelError
    from pi_axera_sd.modeltools.quantize import quantize_model

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "vae_encoder.onnx").unlink()
    with pytest.raises(ModelError, match="no vae_encoder to quantise"):
        quantize_model(folder, components=["unet", "vae_encoder"])
    assert not (folder / "unet.int8.xml").exists()  # refused up front, nothing half-written


def _conv_stack(layers: int = 8, width: int = 32):
    """A small VAE-like graph: 3x3 convolutions with SiLU, a tanh image out."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([1, 4, 16, 16], np.float32, name="latent")
    h, cin = x, 4
    for i in range(layers):
        cout = 3 if i == layers - 1 else width
        w = rng.normal(0, 1 / np.sqrt(cin * 9), (cout, cin, 3, 3)).astype(np.float32)
        h = ops.convolution(h, ops.constant(w), [1, 1], [1, 1], [1, 1], [1, 1])
        h = ops.swish(h) if i < layers - 1 else h
        cin = cout
    return ov.Model([ops.tanh(h)], [x], "conv_stack")


@pytest.mark.torch  # nncf: the bench extra
def test_the_psnr_budget_keeps_the_costliest_layers_in_float():
    import openvino as ov

    from pi_axera_sd.modeltools.quantize import _float_layer_count, _quantize_to_psnr

    rng = np.random.default_rng(1)
    samples = [[(rng.standard_normal((1, 4, 16, 16)) * s).astype(np.float32)] for s in (1, 3, 1, 3)]
    core = ov.Core()
    floats = {}
    for budget in (30.0, 44.0, 48.0):  # plain INT8 reaches ~41.6 dB on this graph
        model, psnr = _quantize_to_psnr(core, _conv_stack(), samples, budget)
        floats[budget] = _float_layer_count(_conv_stack(), model)
        # measured at the runtime's own float precision (BF16 on some CPUs): a little under is fine
        assert psnr >= budget - 1.0, (budget, psnr)
    assert floats[30.0] == 0  # met by plain INT8: nothing kept in float
    assert 0 < floats[44.0] < floats[48.0] < 8  # a tighter budget keeps more, never all
