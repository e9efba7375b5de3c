"""The LCM guidance embedding (``timestep_cond``) of UNets distilled with a guidance input.

LCM models such as ``SimianLuo/LCM_Dreamshaper_v7`` (and their OpenVINO exports) take the
guidance scale as a sinusoidal embedding instead of running classifier-free guidance. This is
the same computation as diffusers' ``LatentConsistencyModelPipeline.get_guidance_scale_embedding``
(itself from google-research/vdm), done once in numpy: ``w = guidance_scale - 1`` (the Imagen
formulation diffusers uses), scaled by 1000, then sin || cos over a geometric frequency ladder.
"""

from __future__ import annotations

import math

import numpy as np

# diffusers' LatentConsistencyModelPipeline default when neither the model nor a setting says
DEFAULT_GUIDANCE_SCALE = 8.5


def guidance_embedding(guidance_scale: float, dim: int) -> np.ndarray:
    """The ``[1, dim]`` float32 ``timestep_cond`` row for ``guidance_scale``."""
    if dim < 2:
        raise ValueError(f"guidance embedding width must be >= 2, got {dim}")
    w = np.float32((guidance_scale - 1.0) * 1000.0)
    half = dim // 2
    step = np.float32(math.log(10000.0) / (half - 1)) if half > 1 else np.float32(0.0)
    freqs = np.exp(np.arange(half, dtype=np.float32) * -step)
    args = w * freqs
    emb = np.concatenate([np.sin(args), np.cos(args)]).astype(np.float32)
    if dim % 2:
        emb = np.pad(emb, (0, 1))
    return emb[None, :]
