"""A1111's ``/sdapi/v1/progress``, ``/interrupt`` and ``/skip`` over the inference lane."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from pi_axera_sd.server.core.context import add_to_access_log, service_of
from pi_axera_sd.server.core.live_preview import LivePreview
from pi_axera_sd.server.dialects.a1111 import progress_body

router = APIRouter(prefix="/sdapi/v1", tags=["a1111"])


@router.get(
    "/progress",
    summary="step progress of the running job; job_count = running + queued; "
    "current_image: a live preview (see the show_progress_* options)",
)
async def progress(request: Request, skip_current_image: bool = False) -> dict[str, Any]:
    service = service_of(request)
    status = service.lane.status()
    body = progress_body(status)
    preview: LivePreview = request.app.state.preview
    frame = None if skip_current_image else preview.frame_for(status.running and status.running.job_id)
    if frame is not None:
        body["current_image"] = await service.run_host_work(preview.encoded, frame)
    return body


@router.post("/interrupt", summary="stop the running job at its next step; finished images are returned")
async def interrupt(request: Request) -> dict[str, Any]:
    add_to_access_log(request, job={"interrupted": service_of(request).lane.interrupt()})
    return {}


@router.post("/skip", summary="stop the running image at its next step; a batch goes on with the next one")
async def skip(request: Request) -> dict[str, Any]:
    add_to_access_log(request, job={"skipped": service_of(request).lane.skip()})
    return {}
