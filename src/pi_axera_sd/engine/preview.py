"""Cheap previews of a latent while an image is being made (A1111's "live previews").

Two decoders: the tiny VAE (TAESD) when the model folder has one, or a linear map from the four
latent channels to RGB. The linear factors are the approximation AUTOMATIC1111 publishes for SD1.x
("Approx cheap", ``sd_samplers_common.samples_to_images_tensor``); they act on the scaled latent.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

# Rows: latent channels 0..3; columns: R, G, B (AUTOMATIC1111, SD1.x "Approx cheap").
SD15_LATENT_RGB = np.array(
    [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ],
    dtype=np.float32,
)

LINEAR = "linear"
TINY = "tiny"


class TinyDecoder(Protocol):
    vae_choices: tuple[str, ...]

    def decode_latent(self, latent: np.ndarray, vae: str = "full") -> np.ndarray: ...


def linear_preview(latent: np.ndarray) -> np.ndarray:
    """[1,4,h,w] scaled latent -> [h,w,3] uint8 RGB at the latent's resolution."""
    rgb = np.einsum("chw,cr->hwr", latent[0, :4].astype(np.float32), SD15_LATENT_RGB)
    return (np.clip((rgb + 1.0) * 0.5, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def preview_method(pipeline: TinyDecoder, wanted: str) -> str:
    """The tiny VAE when asked for (and present), else the linear map."""
    return TINY if wanted == TINY and TINY in pipeline.vae_choices else LINEAR


def preview_pixels(pipeline: TinyDecoder, latent: np.ndarray, method: str) -> np.ndarray:
    """HWC uint8 RGB preview of ``latent`` (the step's denoised estimate)."""
    if method == TINY:
        return pipeline.decode_latent(latent, TINY)
    return linear_preview(latent)
