"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from pi_axera_sd import __version__
from pi_axera_sd.server.core.context import service_of

router = APIRouter(tags=["operations"])


@router.get("/health", summary="alive (no auth); the accelerator's state and the runtime in use")
async def health(request: Request) -> dict[str, Any]:
    from pi_axera_sd.server.core.modelinfo import runtime_info

    service = service_of(request)
    # Liveness stays "ok" while waiting for the NPU: the process is healthy, only not ready yet.
    body: dict[str, Any] = {
        "status": "ok",
        "version": __version__,
        "accelerator": service.accelerator.as_dict(),
        "output": service.output.as_dict(),  # OUTPUT_DIR: "failing" while copies cannot be written
    }
    if service.pipeline is not None:
        body.update(runtime_info(service.pipeline))
    return body


@router.get("/ready", summary="models loaded and jobs taken (no auth); 503 while loading, failed or stopping")
async def ready(request: Request) -> JSONResponse:
    service = service_of(request)
    ok, reason = service.ready()
    if ok and service.draining:
        ok, reason = False, "draining: the service stops soon"
    status = service.lane.status()
    body = {
        "ready": ok,
        "status": "ready" if ok else "not ready",
        "reason": None if ok else reason,
        "model": service.model.name if service.model else None,
        "queued": status.queued,
        "running": status.running is not None,
        "interrogation": service.interrogator_error or "loaded",
        "accelerator": service.accelerator.as_dict(),
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(service_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
