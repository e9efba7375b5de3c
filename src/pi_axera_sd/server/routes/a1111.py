"""A1111's ``POST /sdapi/v1/txt2img`` and ``/sdapi/v1/img2img``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pi_axera_sd.defaults import A1111_STRENGTH
from pi_axera_sd.engine.pipeline import MAX_SEED, resolve_seed
from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.server.core.context import note, read_json, request_id, service_of
from pi_axera_sd.server.core.generation import (
    BatchSpec,
    choose_vae,
    decode_init_image,
    require_pipeline,
    run_batch,
    service_randn_source,
)
from pi_axera_sd.server.core.host import EncodeOptions
from pi_axera_sd.server.dialects import a1111
from pi_axera_sd.server.dialects.schemas import Img2ImgRequest, Txt2ImgRequest, openapi_body

router = APIRouter(prefix="/sdapi/v1", tags=["a1111"])


class GenerationResponse(BaseModel):
    images: list[str]
    parameters: dict[str, Any]
    info: str  # a JSON document as a string, as A1111 sends it


_ERRORS = {
    400: {"description": "a used field is malformed (seed, batch_size, init_images...)"},
    413: {"description": "body or image over the configured limit"},
    500: {"description": "the runtime failed for this job"},
    503: {"description": "queue full, models loading, or stopping (see Retry-After)"},
}


@router.post(
    "/txt2img",
    response_model=GenerationResponse,
    responses=_ERRORS,
    openapi_extra=openapi_body(Txt2ImgRequest),
    summary="batch_size x n_iter images (seeds seed, seed+1, ...); unsupported fields are ignored",
)
async def txt2img(request: Request) -> JSONResponse:
    body = await read_json(request)
    req = Txt2ImgRequest.parse(body)
    return await _generate(request, body, req, a1111.TXT2IMG_DEFAULTS, init=None, strength=None)


@router.post(
    "/img2img",
    response_model=GenerationResponse,
    responses=_ERRORS,
    openapi_extra=openapi_body(Img2ImgRequest, required=("init_images",)),
    summary="img2img from the first of init_images; masks (inpainting) are ignored",
)
async def img2img(request: Request) -> JSONResponse:
    service = service_of(request)
    body = await read_json(request)
    req = Img2ImgRequest.parse(body)
    if not req.init_images:
        raise InvalidInput("init_images is required: a list holding one base64 image")
    pipeline = require_pipeline(service)
    init, _ = await decode_init_image(service, pipeline, req.init_images[0], req.resize_mode)
    strength = req.denoising_strength if req.denoising_strength is not None else A1111_STRENGTH
    return await _generate(request, body, req, a1111.IMG2IMG_DEFAULTS, init=init, strength=strength)


async def _generate(
    request: Request,
    body: dict[str, Any],
    req: Txt2ImgRequest,
    defaults: dict[str, Any],
    *,
    init: Any,
    strength: float | None,
) -> JSONResponse:
    service = service_of(request)
    settings = service.settings
    pipeline = require_pipeline(service)
    count = min(req.batch_size * req.n_iter, settings.max_images_per_request)
    base = resolve_seed(req.seed)
    seeds = tuple((base + i) % (MAX_SEED + 1) for i in range(count))
    spec = BatchSpec(
        mode="img2img" if init is not None else "txt2img",
        prompt=req.prompt,
        seeds=seeds,
        init_image=init,
        strength=strength,
        vae=choose_vae(pipeline, req.requested_vae() or settings.vae),
        randn_source=req.requested_randn_source() or service_randn_source(request),
        encode=EncodeOptions(
            compress_level=settings.png_compress_level,
            want_base64=req.send_images,
            save_dir=settings.output_dir if settings.save_images else None,
            name_prefix=request_id(request),
        ),
    )
    outcome = await run_batch(service, spec, request)
    model = service.model
    assert model is not None  # set before the lane opened
    info = a1111.generation_info(
        model=model,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        base_seed=base,
        seeds=[image.seed for image in outcome.images],
        infotexts=[image.infotext for image in outcome.images],
        steps=outcome.steps,
        images_requested=count,
        denoising_strength=strength,
        interrupted=outcome.interrupted,
        styles=body.get("styles"),
    )
    note(
        request,
        job={"mode": spec.mode, "seeds": info["all_seeds"], "steps": outcome.steps, "requested": count},
        timings={
            "queue_ms": round(outcome.queue_ms, 2),
            "lane_ms": round(outcome.lane_ms, 2),
            "per_image": [t.as_dict() for t in outcome.timings],
        },
    )
    images = [image.base64 for image in outcome.images if image.base64 is not None]
    return JSONResponse(
        {"images": images, "parameters": a1111.echo_parameters(defaults, body), "info": json.dumps(info)}
    )
