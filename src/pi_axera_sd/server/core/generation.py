"""One generation request end to end, whatever dialect it came in: the dialect maps its wire body
to a :class:`GenerationRequest`, :func:`generate_images` does the rest once (the model's readiness,
the img2img input, the defaults, the seeds, the lane job, host encoding and the log's job and
timing notes), and the dialect maps the :class:`Generated` result back to its wire answer.

Each finished image is handed to a host thread as soon as it leaves the VAE decoder, so its PNG and
base64 encoding overlaps the next image's (or the next request's) inference.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
from starlette.requests import Request

from pi_axera_sd.defaults import (
    DEFAULT_RANDN_SOURCE,
    DEFAULT_VAE,
    STRENGTH_BY_DIALECT,
    Dialect,
)
from pi_axera_sd.engine.cfg_policy import decide_cfg
from pi_axera_sd.engine.imageio import decode_base64_image, flatten_alpha, to_model_input
from pi_axera_sd.engine.masks import InpaintPlan, MaskOptions, mask_from_alpha, mask_from_image, plan_inpaint
from pi_axera_sd.engine.pipeline import MAX_SEED, GenerationParams, Pipeline, StageTimings, resolve_seed
from pi_axera_sd.errors import Cancelled, InvalidInput, PayloadTooLarge
from pi_axera_sd.server.core.context import add_to_access_log, request_id, run_on_lane, service_of
from pi_axera_sd.server.core.failures import ApiError, to_api_error
from pi_axera_sd.server.core.host_work import EncodedImage, EncodeOptions, encode_result
from pi_axera_sd.server.core.lane import JobContext
from pi_axera_sd.server.core.live_preview import LivePreview
from pi_axera_sd.server.core.service import Service
from pi_axera_sd.wiring import image_limits

T = TypeVar("T")


@dataclass(frozen=True)
class BatchSpec:
    mode: str  # "txt2img" | "img2img"
    prompt: str
    seeds: tuple[int, ...]
    encode: EncodeOptions
    init_image: np.ndarray | None = None
    strength: float | None = None  # img2img's, decided by generate_images; None for txt2img
    vae: str = DEFAULT_VAE
    randn_source: str = DEFAULT_RANDN_SOURCE
    negative_prompt: str = ""  # used only with guidance (cfg_scale > 1)
    cfg_scale: float = 1.0
    prompt_syntax: bool = True
    warnings: tuple[str, ...] = ()  # the request's own (guidance); each image adds the prompt's
    inpaint: InpaintPlan | None = None  # a mask: the sampler keeps what is outside it
    masked_content: str = "original"
    noise_multiplier: float = 1.0


@dataclass
class BatchOutcome:
    images: list[EncodedImage]
    timings: list[StageTimings]
    interrupted: bool
    steps: int
    queue_ms: float
    lane_ms: float

    warnings: list[str]  # what the model did not follow, once each: for the answer and the log

    @property
    def text_ms(self) -> float:
        return self.timings[0].text_ms if self.timings else 0.0


def require_pipeline(service: Service) -> Pipeline:
    ready, reason = service.ready()
    if not ready or service.pipeline is None:
        raise ApiError(503, reason, headers={"Retry-After": str(service.lane.retry_after())})
    return service.pipeline


async def _host_decode(
    service: Service, pipeline: Pipeline, what: str, decode: Callable[[], T]
) -> tuple[T, float]:
    """Run ``decode`` (image decoding and preparation) on a host thread, after checking the model
    and the queue (a full queue is refused before any decoding is spent on it); returns its ms."""
    if not pipeline.supports_img2img:
        raise InvalidInput(f"{what} is unavailable: the model folder has no VAE encoder")
    service.lane.ensure_room()
    t0 = time.perf_counter()
    result = await service.run_host_work(decode)
    decode_ms = (time.perf_counter() - t0) * 1000.0
    service.metrics.observe_stage("host_decode", decode_ms)
    return result, decode_ms


async def decode_init_image(
    service: Service, pipeline: Pipeline, image_b64: str, resize_mode: int
) -> tuple[np.ndarray, float]:
    """An img2img input decoded and resized to the model's size, and the ms it took."""
    limits = image_limits(service.settings)
    return await _host_decode(
        service,
        pipeline,
        "img2img",
        lambda: pipeline.prepare_image(decode_base64_image(image_b64, limits), resize_mode),
    )


async def decode_inpaint_inputs(
    service: Service, pipeline: Pipeline, gen: GenerationRequest
) -> tuple[np.ndarray, InpaintPlan | None, float]:
    """The init image and its mask decoded and prepared as A1111 does (:func:`plan_inpaint`), on a
    host thread after the queue check. A mask of another size is stretched to the image's (A1111),
    except where the dialect requires the same size (OpenAI: then a 400 naming the field). With
    ``image_alpha_mask`` and no mask, the image's own transparent pixels are the mask (OpenAI's
    DALL-E 2 edits); an image without any is plain img2img (no plan)."""
    limits = image_limits(service.settings)
    assert gen.init_image is not None and (gen.mask is not None or gen.image_alpha_mask)

    def prepare() -> tuple[np.ndarray, InpaintPlan | None]:
        if gen.mask is None:  # the image's own transparency, if it has any: decoded once, used twice
            mask_image = _decoded(gen.init_image, limits, gen.image_param, keep_alpha=True)
            image = flatten_alpha(mask_image)
            if mask_image.mode != "RGBA" or not (np.asarray(mask_image.getchannel("A")) == 0).any():
                return pipeline.prepare_image(image, gen.resize_mode), None
        else:
            image = _decoded(gen.init_image, limits, gen.image_param)
            mask_image = _decoded(gen.mask, limits, gen.mask_param, keep_alpha=gen.mask_alpha)
        if gen.mask_alpha:
            if mask_image.size != image.size:
                raise _blamed(
                    gen.mask_param,
                    f"must be the image's size {image.size[0]}x{image.size[1]}, "
                    f"not {mask_image.size[0]}x{mask_image.size[1]}",
                )
            if mask_image.mode != "RGBA":
                raise _blamed(
                    gen.mask_param, "must have an alpha channel: its transparent pixels mark the area to edit"
                )
            mask = mask_from_alpha(mask_image)
            mask = 1.0 - mask if gen.mask_options.invert else mask
        else:
            mask = mask_from_image(mask_image, image.size, gen.mask_options.invert)
        latent_source = None
        if gen.latent_mask is not None:
            latent_hw = pipeline.latent_shape[2:]
            latent_image = _decoded(gen.latent_mask, limits, "latent_mask")
            latent_source = mask_from_image(latent_image, (latent_hw[1] * 8, latent_hw[0] * 8))
        plan = plan_inpaint(
            image,
            mask,
            gen.mask_options,
            (pipeline.width, pipeline.height),
            pipeline.latent_shape[2:],
            gen.resize_mode,
            latent_source,
        )
        return to_model_input(plan.image), plan

    (init, plan), decode_ms = await _host_decode(service, pipeline, "inpainting", prepare)
    return init, plan, decode_ms


def _decoded(data: str, limits, param: str | None, *, keep_alpha: bool = False):
    with blamed_on(param):
        return decode_base64_image(data, limits, keep_alpha=keep_alpha)


@contextmanager
def blamed_on(param: str | None) -> Iterator[None]:
    """An unusable image becomes an error naming the dialect's field (OpenAI's ``param``): 413 when
    a limit was passed, else 400. Without a field name the error goes up as it is."""
    try:
        yield
    except InvalidInput as exc:
        if param is None:
            raise
        status = 413 if isinstance(exc, PayloadTooLarge) else 400
        raise ApiError(status, f"{param}: {exc}", kind=type(exc).__name__, errors=param) from None


def _blamed(param: str | None, message: str) -> Exception:
    if param is None:
        return InvalidInput(f"mask {message}")
    return ApiError(400, f"{param} {message}", kind="InvalidInput", errors=param)


def service_randn_source(request: Request) -> str:
    """The generator set in ``/sdapi/v1/options`` (initially the ``randn_source`` setting)."""
    return request.app.state.options.randn_source


def choose_vae(pipeline: Pipeline, vae: str) -> str:
    """Validate the decoder choice before queueing, so a bad one costs no lane time."""
    if vae not in pipeline.vae_choices:
        raise InvalidInput(f"vae {vae!r} is unavailable: the model folder has no vae_decoder_tiny.onnx")
    return vae


FinishedImages = list[tuple[StageTimings, Future]]


def _finish_and_encode(result, spec: BatchSpec, index: int) -> EncodedImage:
    """Host work for one finished image: an inpainting result put back over its original, then
    the PNG and base64."""
    if spec.inpaint is not None:
        result = replace(result, pixels=spec.inpaint.finish(result.pixels))
    return encode_result(result, spec.encode, index)


def _lane_job(service: Service, pipeline: Pipeline, spec: BatchSpec, preview: LivePreview | None):
    def run(ctx: JobContext) -> tuple[FinishedImages, bool, int, list[str]]:
        made: FinishedImages = []
        warnings = list(spec.warnings)
        steps = 0  # what the scheduler chose, as the results (or the step callback) report it
        on_latent = preview.hook(pipeline, ctx.job.id) if preview is not None else None
        # Passed only when on, so pipeline stand-ins without the keyword work with previews off.
        extra = {"on_latent": on_latent} if on_latent is not None else {}
        img2img: dict[str, object] = {} if spec.init_image is None else {"init_image": spec.init_image}
        if spec.strength is not None:
            img2img["strength"] = spec.strength
        if spec.inpaint is not None:
            img2img.update(
                mask=spec.inpaint.latent_mask,
                mask_pixels=spec.inpaint.pixel_mask,
                masked_content=spec.masked_content,
            )
        if spec.noise_multiplier != 1.0:
            img2img["noise_multiplier"] = spec.noise_multiplier
        for index, seed in enumerate(spec.seeds):
            ctx.begin_image(index, len(spec.seeds))
            params = GenerationParams(
                spec.prompt,
                seed,
                vae=spec.vae,
                randn_source=spec.randn_source,
                negative_prompt=spec.negative_prompt,
                cfg_scale=spec.cfg_scale,
                prompt_syntax=spec.prompt_syntax,
                **img2img,
            )
            try:
                result = pipeline.generate(params, on_step=ctx.on_step, **extra)
            except Cancelled:
                if ctx.interrupted:
                    break
                continue  # skipped: on to the next image of the batch
            steps = len(result.timesteps)
            warnings += [w for w in getattr(result, "warnings", ()) if w not in warnings]
            if spec.warnings:  # the image's infotext carries every warning of its request
                result = replace(result, warnings=tuple(warnings))
            service.metrics.observe_generation(spec.mode, result.timings)
            encoded = service.host_work_pool.submit(_finish_and_encode, result, spec, index)
            made.append((result.timings, encoded))
        # No image finished: the pipeline's step callback still said how many steps it planned.
        return made, ctx.interrupted, steps or ctx.steps, warnings

    return run


async def run_batch(service: Service, spec: BatchSpec, request: Request) -> BatchOutcome:
    pipeline = require_pipeline(service)
    preview = getattr(request.app.state, "preview", None)
    (made, interrupted, steps, warnings), job = await run_on_lane(
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
        warnings=warnings,
    )


# ---- one request shape ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationRequest:
    """What a generation request means, in every dialect's body."""

    dialect: Dialect
    prompt: str
    seed: int | None = None  # None or -1: a random seed
    count: int = 1  # images asked for (capped at max_images_per_request); seeds seed, seed+1, ...
    init_image: str | None = None  # base64 or a data URI: img2img from it
    resize_mode: int = 0  # A1111's: 0 stretch, 1 crop, 2 fill
    strength: float | None = None  # None: the dialect's default (defaults.STRENGTH_BY_DIALECT)
    vae: str | None = None  # None: the vae setting
    randn_source: str | None = None  # None: /sdapi/v1/options' randn_source
    want_base64: bool = True
    always_save: bool = False  # a copy in OUTPUT_DIR even with save_images off (its path is the answer)
    image_param: str | None = None  # the field an undecodable init image is blamed on (OpenAI's param)
    negative_prompt: str = ""
    cfg_scale: float | None = None  # what the client sent (None: its dialect's default, below)
    default_cfg_scale: float = 1.0  # the dialect's cfg_scale when none is sent (A1111's: 7)
    cfg: bool | None = None  # the request's override of the cfg setting (A1111 override_settings)
    prompt_syntax: bool | None = None  # the request's override of the prompt_syntax setting
    mask: str | None = None  # base64 image: white where the init image may change
    mask_alpha: bool = False  # OpenAI's masks: the transparent pixels mark the area instead
    mask_options: MaskOptions = field(default_factory=MaskOptions)
    mask_param: str | None = None  # the field an unusable mask is blamed on (OpenAI's param)
    image_alpha_mask: bool = False  # no mask sent: the image's own transparent pixels mark the area
    noise_multiplier: float | None = None  # A1111's initial_noise_multiplier
    latent_mask: str | None = None  # A1111's separate mask for the sampler (base64)


@dataclass
class Generated:
    """A finished :class:`GenerationRequest`: its images and what was decided for it."""

    outcome: BatchOutcome
    mode: str
    base_seed: int
    count: int  # images asked for, after the cap
    strength: float | None  # img2img only
    cfg_scale: float  # what the sampler used (1: no guidance)

    @property
    def images(self) -> list[EncodedImage]:
        return self.outcome.images

    @property
    def warnings(self) -> list[str]:
        return self.outcome.warnings


async def generate_images(request: Request, gen: GenerationRequest) -> Generated:
    start = time.perf_counter()
    service = service_of(request)
    settings = service.settings
    pipeline = require_pipeline(service)
    init, decode_ms, inpaint = None, 0.0, None
    if gen.mask is not None or (gen.image_alpha_mask and gen.init_image is not None):
        if gen.init_image is None:
            raise InvalidInput("a mask needs an init image: it marks the part of that image to change")
        init, inpaint, decode_ms = await decode_inpaint_inputs(service, pipeline, gen)
    elif gen.init_image is not None:
        with blamed_on(gen.image_param):
            init, decode_ms = await decode_init_image(service, pipeline, gen.init_image, gen.resize_mode)
    strength = None
    if init is not None:
        strength = gen.strength if gen.strength is not None else STRENGTH_BY_DIALECT[gen.dialect]
    count = min(gen.count, settings.max_images_per_request)
    base = resolve_seed(gen.seed)
    options = request.app.state.options
    cfg = decide_cfg(
        gen.cfg_scale,
        gen.negative_prompt,
        enabled=gen.cfg if gen.cfg is not None else options.cfg,
        max_scale=settings.max_cfg_scale,
        default=gen.default_cfg_scale,
    )
    spec = BatchSpec(
        mode="img2img" if init is not None else "txt2img",
        prompt=gen.prompt,
        seeds=tuple((base + i) % (MAX_SEED + 1) for i in range(count)),
        init_image=init,
        strength=strength,
        vae=choose_vae(pipeline, gen.vae or settings.vae),
        randn_source=gen.randn_source or service_randn_source(request),
        negative_prompt=cfg.negative_prompt,
        cfg_scale=cfg.scale,
        inpaint=inpaint,
        masked_content=gen.mask_options.masked_content,
        noise_multiplier=1.0 if gen.noise_multiplier is None else gen.noise_multiplier,
        prompt_syntax=gen.prompt_syntax if gen.prompt_syntax is not None else options.prompt_syntax,
        warnings=cfg.warnings,
        encode=EncodeOptions(
            compress_level=settings.png_compress_level,
            want_base64=gen.want_base64,
            save_dir=settings.output_dir if settings.save_images or gen.always_save else None,
            name_prefix=request_id(request),
        ),
    )
    outcome = await run_batch(service, spec, request)
    add_to_access_log(
        request,
        job={
            "mode": spec.mode,
            "seeds": [image.seed for image in outcome.images],
            "steps": outcome.steps,
            "requested": count,
            "cfg_scale": cfg.scale,
            "warnings": outcome.warnings,
        },
        timings={
            "decode_ms": round(decode_ms, 2),
            "queue_ms": round(outcome.queue_ms, 2),
            "lane_ms": round(outcome.lane_ms, 2),
            "per_image": [t.as_dict() for t in outcome.timings],
            "encode_ms": [round(image.encode_ms, 2) for image in outcome.images],
            "request_ms": round((time.perf_counter() - start) * 1000.0, 2),
        },
    )
    return Generated(
        outcome=outcome, mode=spec.mode, base_seed=base, count=count, strength=strength, cfg_scale=cfg.scale
    )
