"""Host-side work around one generation: init-image preparation and the output PNG.

Kept apart from :mod:`pipeline` so the service can run it outside the inference lane.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pi_axera_sd.engine.imageio import encode_png, resize_image, to_model_input
from pi_axera_sd.engine.infotext import build_infotext
from pi_axera_sd.engine.pipeline import GenerationResult, Pipeline


def prepare_init_image(image: Image.Image, pipeline: Pipeline, resize_mode: int = 0) -> np.ndarray:
    """Resize a decoded RGB image to the model's size (A1111 resize modes) -> NCHW [-1, 1]."""
    return to_model_input(resize_image(image, pipeline.width, pipeline.height, resize_mode))


def infotext_for(
    pipeline: Pipeline,
    result: GenerationResult,
    prompt: str,
    *,
    negative_prompt: str = "",
    denoising_strength: float | None = None,
) -> str:
    """A1111's ``parameters`` text for an image this pipeline made."""
    return build_infotext(
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=len(result.timesteps),
        seed=result.seed,
        width=pipeline.width,
        height=pipeline.height,
        model=pipeline.model_name,
        denoising_strength=denoising_strength,
        extra={"RNG": result.randn_source},  # A1111 writes "RNG: CPU" when not using the GPU's
    )


def result_png(
    pipeline: Pipeline,
    result: GenerationResult,
    prompt: str,
    *,
    negative_prompt: str = "",
    denoising_strength: float | None = None,
    compress_level: int = 4,
) -> bytes:
    text = infotext_for(
        pipeline, result, prompt, negative_prompt=negative_prompt, denoising_strength=denoising_strength
    )
    return encode_png(result.pixels, text, compress_level=compress_level)
