"""INT8 post-training quantisation of the UNet and VAE decoder for OpenVINO (``models quantize``).

Calibration uses real inputs: the FP32 pipeline is run on a few prompts, as txt2img and as img2img
from synthetic smooth images, and every UNet feed along the sampling trajectories (and every final
latent, for the decoder) is recorded. Prompts, seeds and images are the tool's own, distinct from
anything the benchmark measures. NNCF then writes
``unet.int8.xml`` / ``vae_decoder.int8.xml`` (OpenVINO IR) beside the ONNX files; the engine uses
them with ``PI_AXERA_SD_VARIANT=int8``. Needs the ``bench`` extra (openvino + nncf).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pi_axera_sd.engine.contract import MANIFEST
from pi_axera_sd.engine.imageio import to_model_input
from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
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
COMPONENTS = ("unet", "vae_decoder")
DEEP_CACHE_COMPONENTS = ("unet_deep", "unet_shallow")  # the DeepCache pair (models export --deep-cache)


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
) -> dict[str, Any]:
    import nncf
    import openvino as ov

    model_dir = Path(model_dir)
    layout = resolve_layout(model_dir)
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
            written[name] = _quantize_one(core, layout, model_dir, name, feeds[name])
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


def _quantize_one(core, layout, model_dir: Path, name: str, feeds: list) -> dict[str, Any]:
    """Write ``<name>.int8.xml`` calibrated on ``feeds`` (the FP32 pipeline's own inputs)."""
    import nncf
    import openvino as ov

    source = getattr(layout, name)
    model = core.read_model(str(source))
    order = [sorted(port.get_names())[0] for port in model.inputs]
    samples = [[feed[n] for n in order] for feed in feeds]
    quantized = nncf.quantize(
        model,
        nncf.Dataset(samples),
        subset_size=len(samples),
        # attention MatMuls stay accurate with the transformer scheme; the VAE has none
        model_type=nncf.ModelType.TRANSFORMER if name.startswith("unet") else None,
        # asymmetric activations for the decoder: its SiLU outputs are far from zero-centred
        preset=nncf.QuantizationPreset.MIXED if name == "vae_decoder" else None,
        fast_bias_correction=True,
    )
    target = model_dir / f"{name}.int8.xml"
    ov.save_model(quantized, str(target))
    return {"file": target.name, "calibration_samples": len(samples)}
