"""One generation request end to end: lane job (inference only) plus host encoding.

Each finished image is handed to a host thread as soon as it leaves the VAE decoder, so its PNG and
base64 encoding overlaps the next image's (or the next request's) inference.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from starlette.requests import Request

from pi_axera_sd.defaults import A1111_STRENGTH, DEFAULT_RANDN_SOURCE, DEFAULT_VAE
from pi_axera_sd.engine.imageio import decode_base64_image
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline, StageTimings
from pi_axera_sd.errors import Cancelled, InvalidInput
from pi_axera_sd.server.core.context import run_on_lane
from pi_axera_sd.server.core.failures import ApiError, to_api_error
from pi_axera_sd.server.core.host import EncodedImage, EncodeOptions, encode_result
from pi_axera_sd.server.core.lane import JobContext
from pi_axera_sd.server.core.live_preview import LivePreview
from pi_axera_sd.server.core.service import Service
from pi_axera_sd.wiring import image_limits


@dataclass(frozen=True)
class BatchSpec:
    mode: str  # "txt2img" | "img2img"
    prompt: str
    seeds: tuple[int, ...]
    encode: EncodeOptions
    init_image: np.ndarray | None = None
    strength: float | None = None
    vae: str = DEFAULT_VAE
    randn_source: str = DEFAULT_RANDN_SOURCE

    @property
    def used_strength(self) -> float:
        return self.strength if self.strength is not None else A1111_STRENGTH


@dataclass
class BatchOutcome:
    images: list[EncodedImage]
    timings: list[StageTimings]
    interrupted: bool
    steps: int
    queue_ms: float
    lane_ms: float

    @property
    def text_ms(self) -> float:
        return self.timings[0].text_ms if self.timings else 0.0


def require_pipeline(service: Service) -> Pipeline:
    ready, reason = service.ready()
    if not ready or service.pipeline is None:
        raise ApiError(503, reason, headers={"Retry-After": str(service.lane.retry_after())})
    return service.pipeline


async def decode_init_image(
    service: Service, pipeline: Pipeline, image_b64: str, resize_mode: int
) -> tuple[np.ndarray, float]:
    """Decode and resize an img2img input on a host thread, after checking the model and the queue
    (a full queue is refused before any decoding is spent on it). Returns the input and its ms."""
    if not pipeline.supports_img2img:
        raise InvalidInput("img2img is unavailable: the model folder has no VAE encoder")
    service.lane.ensure_room()
    t0 = time.perf_counter()
    limits = image_limits(service.settings)
    init = await service.run_host(
        lambda: pipeline.prepare_image(decode_base64_image(image_b64, limits), resize_mode)
    )
    decode_ms = (time.perf_counter() - t0) * 1000.0
    service.metrics.observe_stage("host_decode", decode_ms)
    return init, decode_ms


def service_randn_source(request: Request) -> str:
    """The generator set in ``/sdapi/v1/options`` (initially the ``randn_source`` setting)."""
    return request.app.state.options.randn_source


def choose_vae(pipeline: Pipeline, vae: str) -> str:
    """Validate the decoder choice before queueing, so a bad one costs no lane time."""
    if vae not in pipeline.vae_choices:
        raise InvalidInput(f"vae {vae!r} is unavailable: the model folder has no vae_decoder_tiny.onnx")
    return vae


Made = list[tuple[StageTimings, Future]]


def _lane_job(service: Service, pipeline: Pipeline, spec: BatchSpec, preview: LivePreview | None):
    def run(ctx: JobContext) -> tuple[Made, bool, int]:
        made: Made = []
        steps = 0  # what the scheduler chose, as the results (or the step callback) report it
        on_latent = preview.hook(pipeline, ctx.job.id) if preview is not None else None
        # Passed only when on, so pipeline stand-ins without the keyword work with previews off.
        extra = {"on_latent": on_latent} if on_latent is not None else {}
        for index, seed in enumerate(spec.seeds):
            ctx.begin_image(index, len(spec.seeds))
            params = GenerationParams(
                spec.prompt,
                seed,
                spec.init_image,
                spec.used_strength,
                vae=spec.vae,
                randn_source=spec.randn_source,
            )
            try:
                result = pipeline.generate(params, on_step=ctx.on_step, **extra)
            except Cancelled:
                if ctx.interrupted:
                    break
                continue  # skipped: on to the next image of the batch
            steps = len(result.timesteps)
            service.metrics.observe_generation(spec.mode, result.timings)
            encoded = service.host_pool.submit(encode_result, result, spec.encode, index)
            made.append((result.timings, encoded))
        # No image finished: the pipeline's step callback still said how many steps it planned.
        return made, ctx.interrupted, steps or ctx.steps

    return run


async def run_batch(service: Service, spec: BatchSpec, request: Request) -> BatchOutcome:
    pipeline = require_pipeline(service)
    preview = getattr(request.app.state, "preview", None)
    (made, interrupted, steps), job = await run_on_lane(
        service, "generate", _lane_job(service, pipeline, spec, preview), request, label=spec.mode
    )
    try:
        images = [await asyncio.wrap_future(future) for _, future in made]
    except Exception as exc:
        raise to_api_error(exc) from exc
    for image in images:
        service.metrics.observe_stage("host_encode", image.encode_ms)
    service.output.record(images)
    lane_ms = ((job.finished or job.started or 0.0) - (job.started or 0.0)) * 1000.0
    return BatchOutcome(
        images=images,
        timings=[timings for timings, _ in made],
        interrupted=interrupted,
        steps=steps,
        queue_ms=job.wait_s * 1000.0,
        lane_ms=lane_ms,
    )
