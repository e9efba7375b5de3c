"""``POST /generate``: the original service's unified txt2img/img2img endpoint (and AXERA's sample
server's, told apart by its fields)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.server.core.context import read_json, service_of
from pi_axera_sd.server.core.failures import ApiError
from pi_axera_sd.server.core.generation import (
    BatchOutcome,
    GenerationRequest,
    generate_images,
)
from pi_axera_sd.server.dialects import axera_sample
from pi_axera_sd.server.dialects.schemas import GENERATE_RULES, GenerateRequest, openapi_body

router = APIRouter(tags=["generate"])


class GenerateResponse(BaseModel):
    status: str = "ok"
    base64: str
    text_time_ms: float
    total_time_ms: float
    seed: int
    # Only when the model did not follow the whole request (a cut prompt, LoRA tags, guidance off):
    # otherwise the answer is exactly the original service's.
    warnings: list[str] | None = None

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
            warnings=outcome.warnings or None,
        )


@router.post(
    "/generate",
    response_model=GenerateResponse,
    response_model_exclude_none=True,
    openapi_extra=openapi_body(GenerateRequest, extra=GENERATE_RULES),
    summary="txt2img or img2img; unsupported or extra parameters are ignored",
)
async def generate(request: Request) -> GenerateResponse | JSONResponse:
    start = time.perf_counter()
    body = await read_json(request)
    axera = axera_sample.is_axera_sample(body)  # AXERA's sample-server dialect (see axera_sample)
    axera_base64 = axera_sample.wants_base64(body) if axera else True
    req = GenerateRequest.parse(axera_sample.to_generate_request(body) if axera else body)
    img2img = req.resolved_mode() == "img2img"
    if img2img and not req.init_image:
        raise InvalidInput("init_image is required for img2img (a base64 PNG, JPEG or WebP)")
    done = await generate_images(
        request,
        GenerationRequest(
            dialect="axera" if axera else "generate",
            prompt=req.prompt,
            negative_prompt=req.negative_prompt,
            cfg_scale=req.cfg_scale,
            seed=req.seed,
            init_image=req.init_image if img2img else None,
            resize_mode=req.resize_mode,
            strength=req.denoising_strength,
            mask=(req.mask_image or req.mask or None) if img2img else None,
            mask_options=req.mask_options(),
            noise_multiplier=req.initial_noise_multiplier,
            vae=req.vae,
            always_save=not axera_base64,  # then the saved file's path is the only way to the image
        ),
    )
    if not done.images:
        raise ApiError(409, "interrupted before the image was finished", kind="Interrupted")
    image = done.images[0]
    total_ms = (time.perf_counter() - start) * 1000.0
    answer = GenerateResponse.from_outcome(done.outcome, total_ms)
    if not axera:
        return answer
    model = service_of(request).model
    assert model is not None  # set before the lane opened
    return JSONResponse(
        axera_sample.axera_answer(
            answer.model_dump(exclude_none=True),
            width=model.width,
            height=model.height,
            saved_to=image.saved_to,
            with_image=axera_base64,
            save_error=image.save_error,
        )
    )
