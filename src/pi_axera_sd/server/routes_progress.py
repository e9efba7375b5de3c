"""A1111's ``/sdapi/v1/progress``, ``/interrupt`` and ``/skip`` over the inference lane."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from pi_axera_sd.server.a1111 import progress_body
from pi_axera_sd.server.context import note, service_of

router = APIRouter(prefix="/sdapi/v1", tags=["a1111"])


@router.get("/progress", summary="step progress of the running job; job_count = running + queued")
async def progress(request: Request) -> dict[str, Any]:
    return progress_body(service_of(request).lane.status())


@router.post("/interrupt", summary="stop the running job at its next step; finished images are returned")
async def interrupt(request: Request) -> dict[str, Any]:
    note(request, job={"interrupted": service_of(request).lane.interrupt()})
    return {}


@router.post("/skip", summary="stop the running image at its next step; a batch goes on with the next one")
async def skip(request: Request) -> dict[str, Any]:
    note(request, job={"skipped": service_of(request).lane.skip()})
    return {}
