"""``POST /generate``: the seed's unified txt2img/img2img endpoint."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pi_axera_sd.defaults import GENERATE_STRENGTH
from pi_axera_sd.engine.pipeline import resolve_seed
from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.server.core.context import note, read_json, request_id, service_of
from pi_axera_sd.server.core.failures import ApiError
from pi_axera_sd.server.core.generation import (
    BatchOutcome,
    BatchSpec,
    choose_vae,
    decode_init_image,
    require_pipeline,
    run_batch,
    service_randn_source,
)
from pi_axera_sd.server.core.host import EncodeOptions
from pi_axera_sd.server.dialects import axera_sample
from pi_axera_sd.server.dialects.schemas import GENERATE_RULES, GenerateRequest, openapi_body

router = APIRouter(tags=["generate"])


class GenerateResponse(BaseModel):
    status: str = "ok"
    base64: str
    text_time_ms: float
    total_time_ms: float
    seed: int

    @classmethod
    def from_outcome(cls, outcome: BatchOutcome, total_ms: float) -> GenerateResponse:
        """The answer for the batch's one image, so the documented shape is the shape sent."""
        image = outcome.images[0]
        assert image.base64 is not None  # /generate always asks for base64
        return cls(
            base64=image.base64,
            text_time_ms=round(outcome.text_ms, 2),
            total_time_ms=round(total_ms, 2),
            seed=image.seed,
        )


class ErrorResponse(BaseModel):
    status: str = "error"
    error: str


_ERRORS = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "malformed request (bad JSON, non-integer seed, undecodable image, missing prompt)",
        409: "interrupted (POST /sdapi/v1/interrupt) before the image was finished",
        413: "body or image over the configured limit",
        500: "the runtime failed for this job",
        503: "queue full, models loading, or stopping (see Retry-After)",
    }.items()
}


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses=_ERRORS,
    openapi_extra=openapi_body(GenerateRequest, extra=GENERATE_RULES),
    summary="txt2img or img2img; unsupported or extra parameters are ignored",
)
async def generate(request: Request) -> GenerateResponse | JSONResponse:
    start = time.perf_counter()
    service = service_of(request)
    body = await read_json(request)
    axera = axera_sample.is_axera_sample(body)  # AXERA's sample-server dialect (see axera_sample)
    axera_base64 = axera_sample.wants_base64(body) if axera else True
    req = GenerateRequest.parse(axera_sample.to_seed_request(body) if axera else body)
    pipeline = require_pipeline(service)
    mode = req.resolved_mode()
    init = None
    decode_ms = 0.0
    if mode == "img2img":
        if not req.init_image:
            raise InvalidInput("init_image is required for img2img (a base64 PNG, JPEG or WebP)")
        init, decode_ms = await decode_init_image(service, pipeline, req.init_image, req.resize_mode)
    settings = service.settings
    strength = None
    if init is not None:
        strength = req.denoising_strength if req.denoising_strength is not None else GENERATE_STRENGTH
    spec = BatchSpec(
        mode=mode,
        prompt=req.prompt,
        seeds=(resolve_seed(req.seed),),
        init_image=init,
        strength=strength,
        vae=choose_vae(pipeline, req.vae or settings.vae),
        randn_source=service_randn_source(request),
        encode=EncodeOptions(
            compress_level=settings.png_compress_level,
            want_base64=True,
            save_dir=settings.output_dir if settings.save_images or not axera_base64 else None,
            name_prefix=request_id(request),
        ),
    )
    outcome = await run_batch(service, spec, request)
    if not outcome.images:
        raise ApiError(409, "interrupted before the image was finished", kind="Interrupted")
    image = outcome.images[0]
    total_ms = (time.perf_counter() - start) * 1000.0
    note(
        request,
        job={"mode": mode, "seed": image.seed, "steps": outcome.steps},
        timings={
            "decode_ms": round(decode_ms, 2),
            "queue_ms": round(outcome.queue_ms, 2),
            **outcome.timings[0].as_dict(),
            "encode_ms": round(image.encode_ms, 2),
            "request_ms": round(total_ms, 2),
        },
    )
    answer = GenerateResponse.from_outcome(outcome, total_ms)
    if not axera:
        return answer
    return JSONResponse(
        axera_sample.axera_answer(
            answer.model_dump(),
            width=pipeline.width,
            height=pipeline.height,
            saved_to=image.saved_to,
            with_image=axera_base64,
            save_error=image.save_error,
        )
    )
