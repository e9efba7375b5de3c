"""``POST /sdapi/v1/interrogate`` (flat tags) and ``/sdapi/v1/interrogate/structured`` (one winner
per category), run on the inference lane through the :class:`Interrogator` protocol."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from PIL import Image

from pi_axera_sd.defaults import TAG_THRESHOLD
from pi_axera_sd.engine.imageio import decode_base64_image
from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.interrogate.errors import WarmingUp
from pi_axera_sd.interrogate.protocol import Interrogator
from pi_axera_sd.interrogate.scoring import check_categories
from pi_axera_sd.server.core.context import add_to_access_log, read_json, run_on_lane, service_of
from pi_axera_sd.server.core.failures import ApiError
from pi_axera_sd.server.core.service import Service
from pi_axera_sd.server.dialects.schemas import InterrogateRequest, StructuredInterrogateRequest, openapi_body
from pi_axera_sd.wiring import image_limits

router = APIRouter(prefix="/sdapi/v1", tags=["interrogate"])

MODELS = ("clip",)
MAX_TOP_K = 100
# Missing or broken CLIP files stay so until someone installs them and restarts: no quick retry.
_RETRY_LATER = {"Retry-After": "60"}


def _interrogator(service: Service, *, needs_taxonomy: bool) -> Interrogator:
    """The interrogator, or a 503 saying why not (not installed, no model files, warming up)."""
    if service.pipeline is None and service.interrogator is None:
        raise ApiError(503, service.ready()[1], headers={"Retry-After": "5"})
    found = service.interrogator
    if found is None:
        raise ApiError(
            503, f"interrogation model not loaded: {service.interrogator_error}", headers=_RETRY_LATER
        )
    state = found.status()
    if state.error:
        raise ApiError(503, f"interrogation unavailable: {state.error}", headers=_RETRY_LATER)
    if needs_taxonomy and not state.ready:
        raise WarmingUp(state)  # answered by the problems module: 503 with Retry-After and progress
    return found


async def _decode(service: Service, text: str | None) -> Image.Image:
    if not text:
        raise InvalidInput("image is required (a base64 PNG, JPEG or WebP)")
    service.lane.ensure_room()
    start = time.perf_counter()
    image = await service.run_host_work(decode_base64_image, text, image_limits(service.settings))
    service.metrics.observe_stage("host_decode", (time.perf_counter() - start) * 1000.0)
    return image


async def _on_lane(service: Service, request: Request, work: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result, job = await run_on_lane(service, "interrogate", lambda _ctx: work(), request, label="interrogate")
    service.metrics.observe_stage("interrogate", (time.perf_counter() - start - job.wait_s) * 1000.0)
    return result


@router.post(
    "/interrogate",
    openapi_extra=openapi_body(InterrogateRequest, required=("image",)),
    summary="taxonomy tags scoring >= threshold, best first (model: clip)",
)
async def interrogate(request: Request) -> dict[str, Any]:
    service = service_of(request)
    req = InterrogateRequest.parse(await read_json(request))
    if not req.image:
        raise InvalidInput("image is required (a base64 PNG, JPEG or WebP)")
    if req.model.strip().lower() not in MODELS:
        raise ApiError(404, f"model {req.model!r} not found; available: {', '.join(MODELS)}", kind="NotFound")
    interrogator = _interrogator(service, needs_taxonomy=True)
    image = await _decode(service, req.image)
    top_k = min(req.top_k, MAX_TOP_K)
    threshold = TAG_THRESHOLD if req.threshold is None else min(1.0, max(-1.0, req.threshold))
    tags = await _on_lane(
        service, request, lambda: interrogator.tags(image, top_k=top_k, threshold=threshold)
    )
    add_to_access_log(request, job={"tags": len(tags)})
    return {
        "caption": ", ".join(t.tag for t in tags),
        "interrogations": [{"tag": t.tag, "score": round(float(t.score), 6)} for t in tags],
    }


@router.post(
    "/interrogate/structured",
    openapi_extra=openapi_body(StructuredInterrogateRequest, required=("image", "categories")),
    summary="one winner per category (softmax over its labels) plus general taxonomy tags",
)
async def interrogate_structured(request: Request) -> dict[str, Any]:
    service = service_of(request)
    req = StructuredInterrogateRequest.parse(await read_json(request))
    if not req.image:
        raise InvalidInput("image is required (a base64 PNG, JPEG or WebP)")
    categories = check_categories(req.categories, service.settings.max_structured_labels)
    # General tags need the taxonomy; categories do not, so this works while it warms up.
    interrogator = _interrogator(service, needs_taxonomy=False)
    image = await _decode(service, req.image)
    result = await _on_lane(service, request, lambda: interrogator.structured(image, categories))
    return {
        "results": {
            name: {"winner": r.winner, "confidence": round(float(r.confidence), 6)}
            for name, r in result.results.items()
        },
        "general_tags": list(result.general_tags),
    }
