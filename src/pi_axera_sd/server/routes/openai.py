"""The OpenAI Images API, as AXERA's ``axllm serve``, stable-diffusion.cpp's server, Open WebUI,
LibreChat and the ``openai`` SDK speak it: ``GET /v1/models``, ``POST /v1/images/generations``,
``POST /v1/images/edits`` (multipart with an ``image`` file, or JSON with a base64 image), and the
links that ``response_format: "url"`` answers point at.

Values the model cannot honour are brought into range rather than refused: any ``size`` gives the
model's own size (reported in the answer's ``size``), ``n`` is capped at the per-request image
limit, and any ``model`` id is served by the one loaded model.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BeforeValidator, ValidationError
from starlette.datastructures import UploadFile

from pi_axera_sd.engine.masks import MaskOptions
from pi_axera_sd.server.core.context import add_to_access_log, read_json, service_of
from pi_axera_sd.server.core.failures import ApiError
from pi_axera_sd.server.core.generation import GenerationRequest, generate_images
from pi_axera_sd.server.core.image_links import LINK_PREFIX, ImageLinks
from pi_axera_sd.server.core.modelinfo import ModelInfo
from pi_axera_sd.server.dialects.schemas import (
    Count,
    Lenient,
    Seed,
    Strength,
    Text,
    describe_errors,
    openapi_body,
)

router = APIRouter(prefix="/v1", tags=["openai"])
OWNER = "pi-axera-sd"


def _response_format(value: Any) -> str | None:
    if value is None or value == "":
        return None  # the model family's default: see answer_format
    if value in ("b64_json", "url"):
        return value
    raise ValueError(f"must be 'b64_json' or 'url', got {str(value)[:40]!r}")


class ImagesRequest(Lenient):
    """``/v1/images/generations``. ``seed`` is an extension (AXERA's and sd.cpp's servers take it);
    ``quality``, ``style``, ``background``, ``output_format``, ``user`` are accepted and ignored."""

    prompt: Text = ""
    model: Text = ""
    n: Count = 1
    size: Text = ""
    seed: Seed = None
    response_format: Annotated[str | None, BeforeValidator(_response_format)] = None


class EditRequest(ImagesRequest):
    """``/v1/images/edits``: the image comes as a multipart file, or (JSON) as base64 in ``image``
    or OpenAI's ``images: [{"image_url": "data:..."}]``. ``mask`` (a file, base64, or
    ``{"image_url": ...}``): a PNG of the image's size whose transparent pixels mark the area to
    edit, as OpenAI defines it. ``strength`` (0-1) is an extension."""

    image: Any = None
    images: Any = None
    mask: Any = None
    strength: Strength = None


def _parse(model: type[Lenient], body: Any) -> Any:
    """Validate, with the failing field named in OpenAI's ``param``."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", kind="InvalidInput")
    try:
        req = model.model_validate(body)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        raise ApiError(
            400, describe_errors(exc), kind="InvalidInput", errors=str(loc[0]) if loc else None
        ) from None
    if not req.prompt.strip():
        raise ApiError(400, "prompt is required", kind="InvalidInput", errors="prompt")
    return req


def answer_format(model: str, asked: str | None) -> str:
    """``b64_json`` or ``url``, with OpenAI's defaults by model family: ``dall-e-*`` answers ``url``
    unless asked otherwise, ``gpt-image-*`` always ``b64_json`` (it has no url form); any other id
    (ours) ``b64_json``. LibreChat's DALL-E 3 tool reads ``data[0].url`` without asking for it, and its
    gpt-image tool ``data[0].b64_json``."""
    family = model.strip().lower()
    if family.startswith("gpt-image"):
        return "b64_json"
    if asked is not None:
        return asked
    return "url" if family.startswith("dall-e") else "b64_json"


def model_id(model: ModelInfo) -> str:
    """Says what the model is, as AXERA's ids do (``lcm-lora-sdv1-5-256x256``)."""
    return f"{model.name}-{model.width}x{model.height}"


def _links(request: Request) -> ImageLinks:
    return request.app.state.image_links


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    service = service_of(request)
    model = service.model
    if model is None:
        raise ApiError(503, service.ready()[1], headers={"Retry-After": "5"})
    entry = {"id": model_id(model), "object": "model", "created": int(service.started_at), "owned_by": OWNER}
    return {"object": "list", "data": [entry]}


@router.post("/images/generations", openapi_extra=openapi_body(ImagesRequest))
async def generations(request: Request) -> JSONResponse:
    req = _parse(ImagesRequest, await read_json(request))
    return await _answer(request, req)


def _edits_body() -> dict[str, Any]:
    """Documented bodies: the multipart form OpenAI clients send, and the JSON form."""
    json_body = openapi_body(EditRequest)["requestBody"]["content"]["application/json"]
    form = {
        "type": "object",
        "required": ["image", "prompt"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "mask": {"type": "string", "format": "binary"},
            **{k: {"type": "string"} for k in ("prompt", "model", "n", "size", "seed", "response_format")},
        },
    }
    content = {"multipart/form-data": {"schema": form}, "application/json": json_body}
    return {"requestBody": {"required": True, "content": content}}


@router.post("/images/edits", openapi_extra=_edits_body())
async def edits(request: Request) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        body, files = await _read_form(request)
        image_b64, mask_b64 = files.get("image"), files.get("mask")
    else:
        body = await read_json(request)
        image_b64, mask_b64 = _json_image(body), _json_mask(body)
    req = _parse(EditRequest, body)
    if image_b64 is None:
        raise ApiError(
            400, "image is required: a PNG, JPEG or WebP file", kind="InvalidInput", errors="image"
        )
    # no mask: as DALL-E 2, the image's own fully transparent pixels (if any) mark the area to edit
    masked = {"mask": mask_b64, "mask_param": "mask"} if mask_b64 is not None else {"image_alpha_mask": True}
    masked["mask_alpha"] = True
    # OpenAI's edit changes only the transparent area and keeps the rest exactly: no blur, whole image
    options = MaskOptions(blur_x=0, blur_y=0, masked_content="original", full_res=False)
    return await _answer(
        request, req, init_image=image_b64, strength=req.strength, mask_options=options, **masked
    )


async def _read_form(request: Request) -> tuple[dict[str, Any], dict[str, str]]:
    """Text fields as a dict; the first ``image`` (or ``image[]``) file and the ``mask`` file as base64."""
    form = await request.form()
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            name = "image" if key in ("image", "image[]") else key
            if name in ("image", "mask") and name not in files:
                files[name] = await value.read()
        else:
            fields[key] = value
    add_to_access_log(request, params={k: v for k, v in fields.items()})
    service = service_of(request)
    encoded = {}
    for name, raw in files.items():
        encoded[name] = (await service.run_host_work(base64.b64encode, raw)).decode("ascii")
    return fields, encoded


def _json_mask(body: Any) -> str | None:
    """JSON edits' ``mask``: base64, a data URI, or OpenAI's ``{"image_url": ...}``."""
    mask = body.get("mask") if isinstance(body, dict) else None
    if isinstance(mask, dict):
        mask = mask.get("image_url") or mask.get("b64_json")
    if mask is None or isinstance(mask, str):
        return mask
    raise ApiError(400, "mask must be a base64 PNG or data URI", kind="InvalidInput", errors="mask")


def _json_image(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    image = body.get("image")
    if isinstance(image, str):
        return image
    images = body.get("images")
    if isinstance(images, list) and images:
        first = images[0]
        if isinstance(first, dict):
            first = first.get("image_url") or first.get("b64_json")
        if isinstance(first, str):
            return first
    if image is not None or images is not None:
        raise ApiError(400, "image must be a base64 string or data URI", kind="InvalidInput", errors="image")
    return None


async def _answer(request: Request, req: ImagesRequest, **img2img: Any) -> JSONResponse:
    """The request in the service's one shape, and the images in OpenAI's."""
    done = await generate_images(
        request,
        GenerationRequest(
            dialect="openai", prompt=req.prompt, seed=req.seed, count=req.n, image_param="image", **img2img
        ),
    )
    if not done.images:
        raise ApiError(409, "interrupted before an image was finished", kind="Interrupted")
    data = []
    form = answer_format(req.model, req.response_format)
    for image in done.images:
        item: dict[str, Any] = {"revised_prompt": req.prompt, "seed": image.seed}
        if form == "url" and image.png is not None:
            item["url"] = str(request.base_url).rstrip("/") + LINK_PREFIX + _links(request).add(image.png)
        else:
            item["b64_json"] = image.base64
        data.append(item)
    model = service_of(request).model
    assert model is not None  # set before the lane opened
    answer: dict[str, Any] = {
        "created": int(time.time()),
        "data": data,
        "size": f"{model.width}x{model.height}",
        "output_format": "png",
    }
    if done.warnings:  # ours: what the model did not follow (a cut prompt, LoRA tags)
        answer["warnings"] = done.warnings
    return JSONResponse(answer)


@router.get("/images/files/{name}", response_class=Response, responses={404: {"description": "expired"}})
async def image_file(request: Request, name: str) -> Response:
    png = _links(request).get(name)
    if png is None:
        raise ApiError(404, "this image link has expired or never existed", kind="NotFound")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


__all__ = ["model_id", "router"]
