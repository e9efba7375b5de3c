"""INT8 post-training quantisation for OpenVINO (``models quantize``): the UNet, the VAE decoder and
encoder, and the DeepCache pair.

Calibration uses real inputs: the FP32 pipeline is run on a few prompts, as txt2img and as img2img
from synthetic smooth images, and every UNet feed along the sampling trajectories (every final
latent, for the decoder; every image, for the encoder) is recorded. Prompts, seeds and images are the
tool's own, distinct from anything the benchmark measures. NNCF then writes ``<component>.int8.xml``
(OpenVINO IR) beside the ONNX files; the engine uses them with ``PI_AXERA_SD_VARIANT=int8``.

The VAE's INT8 error shows in every pixel, so its components' PSNR against FP32 (in the image, for
the encoder through the decoder) is measured on the recorded samples and written to the manifest.
With ``min_psnr`` they are quantised to that budget instead (mixed precision): NNCF measures what
each quantised layer costs and leaves the costliest layers in floating point until the worst sample
reaches it. Needs the ``bench`` extra (openvino + nncf).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pi_axera_sd.engine.contract import LATENT_CHANNELS, MANIFEST
from pi_axera_sd.engine.imageio import to_model_input
from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
from pi_axera_sd.errors import ModelError
from pi_axera_sd.modeltools.progress import Stages
from pi_axera_sd.runtime import RuntimeOptions

CALIBRATION_PROMPTS = (
    "portrait of a woman with long pink hair, studio lighting",
    "a city street at night in the rain, neon signs",
    "a bowl of fruit on a wooden table, oil painting",
    "a mountain lake at sunrise, wide angle landscape photo",
)
CALIBRATION_SEED = 1000
IMG2IMG_STRENGTH = 0.6  # two of the four steps
COMPONENTS = ("unet", "vae_decoder")  # the default run
VAE_COMPONENTS = ("vae_decoder", "vae_encoder")  # PSNR measured (and with --min-psnr, budgeted)
DEEP_CACHE_COMPONENTS = ("unet_deep", "unet_shallow")  # the DeepCache pair (models export --deep-cache)
ALL_COMPONENTS = ("unet", *VAE_COMPONENTS, *DEEP_CACHE_COMPONENTS)
# A VAE PSNR budget is opt-in (--min-psnr): ranking the layers runs the model once per quantised layer
# (115-152 in SD1.5's VAE), about 15 minutes per pass for the full-size encoder on 2 cores, and on
# the benchmark's random weights the error is spread so evenly that keeping the three costliest
# layers in float gained 0.3 dB. 36 dB would leave room for the INT8 UNet's own error (43-45 dB on the
# benchmark's image), so the finished image stays above 30 dB of the FP32 pipeline's.
SUGGESTED_MIN_PSNR_DB = 36.0
PSNR_CAP_DB = 60.0  # an exact match scores this, not infinity (NNCF measures drops from it)
RANKING_SAMPLES = 2  # samples NNCF ranks layers on: each ranking step runs the model on all of them


def calibration_image(index: int, size: int) -> np.ndarray:
    """An img2img input: a random colour field (bicubic-upscaled noise) with grain of a strength that
    varies by index, since photos carry texture a smooth field lacks and the decoder's activation
    ranges depend on it."""
    from PIL import Image

    rng = np.random.default_rng(CALIBRATION_SEED + index)
    small = rng.integers(0, 256, (4 + 2 * index, 4 + 2 * index, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC), np.float32)
    grain = rng.normal(0.0, (0.0, 12.0, 30.0, 50.0)[index % 4], field.shape)
    return to_model_input(Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8)))


def record_calibration(
    model_dir: Path, prompts: Sequence[str], seed: int = CALIBRATION_SEED, deep_cache: bool = False
) -> dict[str, list[dict]]:
    """Run the FP32 pipeline (txt2img and img2img) and keep the feeds each component received.
    ``deep_cache``: run it with the DeepCache pair (interval 2) and record its two graphs instead of
    the UNet's, each on the steps it runs."""
    interval = 2 if deep_cache else 0
    pipeline = Pipeline.load(
        resolve_layout(model_dir), RuntimeOptions(runtime="openvino", precision="f32"), deep_cache=interval
    )
    sessions = {"unet_deep" if deep_cache else "unet": pipeline.unet, "vae_decoder": pipeline.vae_decoder}
    if deep_cache:
        sessions["unet_shallow"] = pipeline.unet_shallow
    if pipeline.vae_encoder is not None:
        sessions["vae_encoder"] = pipeline.vae_encoder
    feeds: dict[str, list[dict]] = {name: [] for name in sessions}
    for name, session in sessions.items():
        original = session.run

        def recording(feed, outputs=None, _name=name, _run=original):
            feeds[_name].append({k: np.array(v) for k, v in feed.items()})
            return _run(feed, outputs)

        session.run = recording
    for i, prompt in enumerate(prompts):
        pipeline.generate(GenerationParams(prompt, seed=seed + i))
        if pipeline.supports_img2img:
            init = calibration_image(i, pipeline.width)
            pipeline.generate(
                GenerationParams(prompt, seed=seed + i, init_image=init, strength=IMG2IMG_STRENGTH)
            )
    return feeds


def quantize_model(
    model_dir: str | Path,
    components: Sequence[str] = COMPONENTS,
    prompts: Sequence[str] = CALIBRATION_PROMPTS,
    min_psnr: float | None = None,
) -> dict[str, Any]:
    import nncf
    import openvino as ov

    model_dir = Path(model_dir)
    layout = resolve_layout(model_dir)
    absent = [name for name in components if name in ALL_COMPONENTS and getattr(layout, name) is None]
    if absent:  # before the calibration run, not minutes into it
        raise ModelError(f"{model_dir}: no {', '.join(absent)} to quantise in this folder")
    started = time.perf_counter()
    stages = Stages("quantize", {"calibration run": 2, **{name: 3 for name in components}})
    with stages.step("calibration run"):
        deep_cache = any(name in DEEP_CACHE_COMPONENTS for name in components)
        if deep_cache and "unet" in components:
            raise ValueError(
                "quantize unet and the DeepCache pair (unet_deep, unet_shallow) in separate runs"
            )
        feeds = record_calibration(model_dir, prompts, deep_cache=deep_cache)
    core = ov.Core()
    written = {}
    for name in components:
        with stages.step(name):
            written[name] = _quantize_one(core, layout, model_dir, name, feeds[name], min_psnr)
    stages.close()
    info = {
        "variant": "int8",
        "tool": f"nncf {nncf.__version__}, openvino {ov.__version__}",
        "calibration_prompts": list(prompts),
        "calibration": f"txt2img + img2img (strength {IMG2IMG_STRENGTH}, synthetic images), seeds from "
        f"{CALIBRATION_SEED}",
        "components": written,
        "seconds": round(time.perf_counter() - started, 1),
    }
    manifest_path = model_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    variants = manifest.setdefault("variants", {})
    earlier = variants.get("int8", {}).get("components", {})  # e.g. the UNet, before the DeepCache pair
    variants["int8"] = {**info, "components": {**earlier, **written}}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return info


def _quantize_one(
    core, layout, model_dir: Path, name: str, feeds: list, min_psnr: float | None
) -> dict[str, Any]:
    """Write ``<name>.int8.xml`` calibrated on ``feeds`` (the FP32 pipeline's own inputs)."""
    import nncf
    import openvino as ov

    source = getattr(layout, name)
    model = core.read_model(str(source))
    order = [sorted(port.get_names())[0] for port in model.inputs]
    samples = [[feed[n] for n in order] for feed in feeds]
    target = model_dir / f"{name}.int8.xml"
    if name in VAE_COMPONENTS:
        readout = _through_decoder(core, layout) if name == "vae_encoder" else None
        quantized, psnr = _quantize_to_psnr(core, model, samples, min_psnr, readout)
        ov.save_model(quantized, str(target))
        return {
            "file": target.name,
            "calibration_samples": len(samples),
            "psnr_db": round(psnr, 2),  # the worst calibration sample's, against FP32
            **({} if min_psnr is None else {"min_psnr_db": min_psnr, "budget_met": bool(psnr >= min_psnr)}),
            "float_layers": _float_layer_count(model, quantized),
        }
    quantized = nncf.quantize(
        model,
        nncf.Dataset(samples),
        subset_size=len(samples),
        # attention MatMuls stay accurate with the transformer scheme
        model_type=nncf.ModelType.TRANSFORMER,
        fast_bias_correction=True,
    )
    ov.save_model(quantized, str(target))
    return {"file": target.name, "calibration_samples": len(samples)}


def image_psnr(got: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of a decoded image against the reference image, both as the engine shows them (clipped
    to [-1, 1], so a peak of 2), capped at :data:`PSNR_CAP_DB`."""
    got, reference = (np.clip(x.astype(np.float64), -1.0, 1.0) for x in (got, reference))
    mse = float(np.mean((got - reference) ** 2))
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, float(10.0 * np.log10(2.0**2 / mse)))


def _through_decoder(core, layout) -> Callable[[np.ndarray], np.ndarray]:
    """The encoder's error as it shows in the image: its latent mean, decoded by the unquantised
    decoder (the same decoder for the reference and the candidate, so only the encoder differs)."""
    decoder = core.compile_model(core.read_model(str(layout.vae_decoder)), "CPU")
    return lambda moments: decoder(moments[:, :LATENT_CHANNELS])[0]


def _quantize_to_psnr(core, model, samples: list, min_psnr: float | None, readout=None):
    """INT8, measured: every sample's PSNR against the FP32 output, through ``readout`` (default: the
    output itself). With ``min_psnr``, NNCF's accuracy control then ranks every quantised layer by the
    PSNR it costs (on :data:`RANKING_SAMPLES` samples) and keeps the worst in floating point,
    re-measuring, until the least PSNR reaches ``min_psnr``. Returns the model and that least PSNR,
    measured as the engine runs it (OpenVINO's default precision)."""
    import nncf

    readout = readout or (lambda output: output)
    reference = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    # each item carries its own FP32 output: NNCF validates on subsets, one item at a time too
    items = [(sample, readout(reference(sample)[0])) for sample in samples]

    def validate(compiled, data) -> tuple[float, list[float]]:
        values = [image_psnr(readout(compiled(sample)[0]), ref) for sample, ref in data]
        return min(values), values

    common = {
        # asymmetric activations: the VAE's SiLU outputs are far from zero-centred
        "preset": nncf.QuantizationPreset.MIXED,
        "subset_size": len(samples),
        "fast_bias_correction": True,
    }
    if min_psnr is None:
        quantized = nncf.quantize(model, nncf.Dataset(samples), **common)
    else:
        quantized = nncf.quantize_with_accuracy_control(
            model,
            nncf.Dataset(samples),
            nncf.Dataset(items, lambda item: item[0]),
            validate,
            max_drop=PSNR_CAP_DB - min_psnr,
            drop_type=nncf.DropType.ABSOLUTE,
            advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
                ranking_subset_size=min(RANKING_SAMPLES, len(samples))
            ),
            **common,
        )
    psnr, _ = validate(core.compile_model(quantized, "CPU"), items)
    return quantized, psnr


def _float_layer_count(original, quantized) -> int:
    """Convolutions and MatMuls that run in floating point in ``quantized``: no FakeQuantize feeds them
    (NNCF's scheme leaves some out; a PSNR budget returns more)."""
    compute = {"Convolution", "MatMul"}
    total = sum(op.get_type_name() in compute for op in original.get_ordered_ops())
    quantized_layers = sum(
        op.get_type_name() in compute
        and any(v.get_node().get_type_name() == "FakeQuantize" for v in op.input_values())
        for op in quantized.get_ordered_ops()
    )
    return total - quantized_layers
