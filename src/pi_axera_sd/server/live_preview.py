"""Live previews for ``/sdapi/v1/progress``'s ``current_image``.

The lane thread makes the preview pixels at a step boundary (the tiny VAE needs the accelerator, so
it runs there, in turn); ``/progress`` turns the latest pixels into a small PNG on a host thread,
once per step, only when someone asks. A1111's options drive it: ``live_previews_enable``,
``show_progress_every_n_steps`` (0 turns previews off) and ``show_progress_type`` ("Approx cheap":
the linear map; any other value: the tiny VAE when the model has one).
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pi_axera_sd.engine.pipeline import LatentCallback, Pipeline
from pi_axera_sd.engine.preview import LINEAR, TINY, preview_method, preview_pixels

PREVIEW_MAX_SIDE = 256  # px: enough for a progress thumbnail, cheap to encode and send
CHEAP_TYPE = "Approx cheap"

# Defaults merged into the A1111 options store.
OPTION_DEFAULTS: dict[str, Any] = {
    "live_previews_enable": True,
    "show_progress_every_n_steps": 1,
    "show_progress_type": "TAESD",
}


@dataclass(frozen=True)
class _Frame:
    job_id: str
    step: int
    pixels: np.ndarray


def _png_base64(pixels: np.ndarray) -> str:
    image = Image.fromarray(pixels)
    if max(image.size) > PREVIEW_MAX_SIDE:
        image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), Image.Resampling.BILINEAR)
    elif max(image.size) < PREVIEW_MAX_SIDE // 2:
        # A linear preview is latent-sized (1/8 of the image): enlarge it so browsers show blocks,
        # not a blur.
        scale = max(1, (PREVIEW_MAX_SIDE // 2) // max(image.size))
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class LivePreview:
    """The running job's latest preview frame and its PNG, cached per step."""

    def __init__(self, options: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self._frame: _Frame | None = None
        self._encoded: tuple[str, int, str] | None = None  # (job_id, step, base64 PNG)
        self._options = options

    def settings(self) -> tuple[int, str]:
        """(every N steps, "tiny"|"linear"); N == 0 means off."""
        values = dict(OPTION_DEFAULTS)
        if self._options is not None:
            values.update(self._options())
        if not values.get("live_previews_enable"):
            return 0, LINEAR
        try:
            every = max(0, int(values.get("show_progress_every_n_steps") or 0))
        except (TypeError, ValueError):
            every = 0
        wanted = LINEAR if values.get("show_progress_type") == CHEAP_TYPE else TINY
        return every, wanted

    def hook(self, pipeline: Pipeline, job_id: str) -> LatentCallback | None:
        """The pipeline's ``on_latent`` for one job, or None when previews are off."""
        every, wanted = self.settings()
        if every <= 0:
            return None
        method = preview_method(pipeline, wanted)

        def on_latent(done: int, total: int, latent: np.ndarray) -> None:
            # The last step's latent becomes the finished image moments later: no preview for it.
            if done >= total or done % every:
                return
            pixels = preview_pixels(pipeline, latent, method)
            with self._lock:
                self._frame = _Frame(job_id, done, pixels)

        return on_latent

    def frame_for(self, job_id: str | None) -> _Frame | None:
        with self._lock:
            frame = self._frame
        return frame if frame is not None and job_id is not None and frame.job_id == job_id else None

    def encoded(self, frame: _Frame) -> str:
        """The frame as base64 PNG (host thread); repeated polls of one step reuse the PNG."""
        with self._lock:
            cached = self._encoded
        if cached is not None and cached[:2] == (frame.job_id, frame.step):
            return cached[2]
        text = _png_base64(frame.pixels)
        with self._lock:
            self._encoded = (frame.job_id, frame.step, text)
        return text
