"""A1111's ``POST /sdapi/v1/txt2img`` and ``/sdapi/v1/img2img``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.server.core.context import read_json, service_of
from pi_axera_sd.server.core.generation import GenerationRequest, generate_images
from pi_axera_sd.server.dialects import a1111
from pi_axera_sd.server.dialects.schemas import Img2ImgRequest, Txt2ImgRequest, openapi_body

router = APIRouter(prefix="/sdapi/v1", tags=["a1111"])


class GenerationResponse(BaseModel):
    images: list[str]
    parameters: dict[str, Any]
    info: str  # a JSON document as a string, as A1111 sends it


@router.post(
    "/txt2img",
    response_model=GenerationResponse,
    openapi_extra=openapi_body(Txt2ImgRequest),
    summary="batch_size x n_iter images (seeds seed, seed+1, ...); unsupported fields are ignored",
)
async def txt2img(request: Request) -> JSONResponse:
    body = await read_json(request)
    req = Txt2ImgRequest.parse(body)
    return await _answer(request, body, req, a1111.TXT2IMG_DEFAULTS)


@router.post(
    "/img2img",
    response_model=GenerationResponse,
    openapi_extra=openapi_body(Img2ImgRequest, required=("init_images",)),
    summary="img2img from the first of init_images; with a mask, inpainting (A1111's mask fields)",
)
async def img2img(request: Request) -> JSONResponse:
    body = await read_json(request)
    req = Img2ImgRequest.parse(body)
    if not req.init_images:
        raise InvalidInput("init_images is required: a list holding one base64 image")
    img2img = {
        "init_image": req.init_images[0],
        "resize_mode": req.resize_mode,
        "strength": req.denoising_strength,
        "mask": req.mask or None,
        "mask_options": req.mask_options(),
        "noise_multiplier": req.initial_noise_multiplier,
        "latent_mask": req.latent_mask or None,
    }
    return await _answer(request, body, req, a1111.IMG2IMG_DEFAULTS, **img2img)


async def _answer(
    request: Request, body: dict[str, Any], req: Txt2ImgRequest, defaults: dict[str, Any], **img2img: Any
) -> JSONResponse:
    """The request in the service's one shape, and the images in A1111's."""
    done = await generate_images(
        request,
        GenerationRequest(
            dialect="a1111",
            prompt=req.prompt,
            negative_prompt=req.negative_prompt,
            cfg_scale=req.cfg_scale,
            default_cfg_scale=a1111.TXT2IMG_DEFAULTS["cfg_scale"],
            cfg=req.override_flag("cfg"),
            prompt_syntax=req.override_flag("prompt_syntax"),
            seed=req.seed,
            count=req.batch_size * req.n_iter,
            vae=req.requested_vae(),
            randn_source=req.requested_randn_source(),
            want_base64=req.send_images,
            **img2img,
        ),
    )
    model = service_of(request).model
    assert model is not None  # set before the lane opened
    info = a1111.generation_info(
        model=model,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        base_seed=done.base_seed,
        seeds=[image.seed for image in done.images],
        infotexts=[image.infotext for image in done.images],
        steps=done.outcome.steps,
        images_requested=done.count,
        denoising_strength=done.strength,
        cfg_scale=done.cfg_scale,
        warnings=done.warnings,
        interrupted=done.outcome.interrupted,
        styles=body.get("styles"),
    )
    images = [image.base64 for image in done.images if image.base64 is not None]
    return JSONResponse(
        {"images": images, "parameters": a1111.echo_parameters(defaults, body), "info": json.dumps(info)}
    )
