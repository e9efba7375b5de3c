"""Emphasis weights applied to a chunk's text-encoder output: AUTOMATIC1111's "Original" method.

Each token's hidden state is scaled by its weight, then the whole chunk is rescaled so that its mean
is what it was: the weights shift attention between tokens without changing the conditioning's
overall magnitude.
"""

from __future__ import annotations

import numpy as np


def apply_emphasis(hidden: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`hidden` [1, T, D] (one chunk's encoder output) scaled by `weights` [T], mean kept; float32.

    All weights exactly 1.0 return `hidden` itself, so unweighted prompts stay bit-identical.
    """
    weights = np.asarray(weights, dtype=np.float32).reshape(-1)
    if hidden.ndim != 3 or hidden.shape[1] != weights.shape[0]:
        raise ValueError(f"hidden {hidden.shape} does not match {weights.shape[0]} weights")
    if np.all(weights == 1.0):
        return hidden
    hidden = np.asarray(hidden, dtype=np.float32)
    # means in float64: the ratio of two means of ~60k values is sensitive to float32 rounding
    mean_before = hidden.mean(dtype=np.float64)
    scaled = hidden * weights.reshape(1, -1, 1)
    mean_after = scaled.mean(dtype=np.float64)
    if mean_after == 0.0:
        return scaled  # nothing to rescale by (every weight 0, or a zero-mean output)
    return (scaled * np.float32(mean_before / mean_after)).astype(np.float32, copy=False)
