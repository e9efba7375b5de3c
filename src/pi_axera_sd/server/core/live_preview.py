"""Live previews for ``/sdapi/v1/progress``'s ``current_image``.

The lane thread makes the preview pixels at a step boundary (the tiny VAE needs the accelerator, so
it runs there, in turn); ``/progress`` turns the latest pixels into a small PNG on a host thread,
once per step, only when someone asks. A1111's options drive it: ``live_previews_enable``,
``show_progress_every_n_steps`` (0 turns previews off) and ``show_progress_type`` ("Approx cheap":
the linear map; any other value: the tiny VAE when the model has one).

Previews must not slow an image by more than 5 %. The linear map costs about a millisecond; a
tiny-VAE decode can cost more than that share of a step on a small model or a slow CPU. So the
tiny VAE is used only while its measured decode time stays within ``COST_BUDGET`` of the UNet
time between two previews; otherwise the preview falls back to the linear map. The first tiny
decode of the service's life is the measurement (a one-off cost).
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pi_axera_sd.engine.pipeline import LatentCallback, Pipeline
from pi_axera_sd.engine.preview import LINEAR, TINY, preview_method, preview_pixels

PREVIEW_MAX_SIDE = 256  # px: enough for a progress thumbnail, cheap to encode and send
CHEAP_TYPE = "Approx cheap"
COST_BUDGET = 0.05  # the share of the UNet time between two previews a tiny-VAE decode may take
_EMA = 0.3

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


def _mean(old: float | None, new: float) -> float:
    return new if old is None else (1 - _EMA) * old + _EMA * new


class LivePreview:
    """The running job's latest preview frame and its PNG, cached per step."""

    def __init__(
        self, options: Callable[[], Mapping[str, Any]] | None = None, budget: float | None = COST_BUDGET
    ) -> None:
        self.budget = budget  # None: always the tiny VAE when asked for (benchmarks)
        self._step_s: float | None = None  # running means, kept across jobs (same model, same lane)
        self._tiny_s: float | None = None
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
        previous: list[float] = []  # when the previous on_latent of this image returned

        def on_latent(done: int, total: int, latent: np.ndarray) -> None:
            now = time.perf_counter()
            if done > 1 and previous:
                self._step_s = _mean(self._step_s, now - previous[0])  # UNet + scheduler, no preview
            try:
                # The last step's latent becomes the finished image moments later: no preview for it.
                if done >= total or done % every:
                    return
                if self._affordable(method, every) == TINY:
                    pixels = self._timed_tiny(pipeline, latent)
                else:
                    pixels = preview_pixels(pipeline, latent, LINEAR)
                with self._lock:
                    self._frame = _Frame(job_id, done, pixels)
            finally:
                previous[:] = [time.perf_counter()]

        return on_latent

    def _affordable(self, method: str, every: int) -> str:
        """``method``, or the linear map when a tiny-VAE decode would exceed the cost budget."""
        if method != TINY or self.budget is None:
            return method
        if self._tiny_s is not None and (
            self._step_s is None or self._tiny_s > self.budget * every * self._step_s
        ):
            return LINEAR
        return TINY

    def _timed_tiny(self, pipeline: Pipeline, latent: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        pixels = preview_pixels(pipeline, latent, TINY)
        self._tiny_s = _mean(self._tiny_s, time.perf_counter() - start)
        return pixels

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
