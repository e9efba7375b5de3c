"""Waiting for a lane job from a request handler, and giving up the place if the client leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from pi_axera_sd.server.lane import Job, JobContext, Lane
from pi_axera_sd.server.problems import ApiError, ClientGone, to_api_error

if TYPE_CHECKING:
    from pi_axera_sd.server.service import Service


async def _until_disconnected(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect (or the end of the response).
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def await_job(lane: Lane, job: Job, request: Request) -> Any:
    """The job's result. If the client disconnects while the job still waits, the job is withdrawn
    and :class:`ClientGone` raised; once it runs it is let finish (the accelerator cannot stop
    mid-step anyway) and its result is returned to a caller that will find nobody to send it to."""
    result = asyncio.wrap_future(job.future)
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        done, _ = await asyncio.wait({result, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if result not in done and lane.withdraw(job):
            raise ClientGone()
        return await result
    finally:
        watcher.cancel()


async def run_on_lane(
    service: Service, kind: str, work: Callable[[JobContext], Any], request: Request, *, label: str
) -> tuple[Any, Job]:
    """Queue ``work`` on the lane, wait for it as :func:`await_job` does, turn its failure into the
    route's error, and record the time it waited. Returns the result and the job (for timings)."""
    job = service.lane.submit(kind, work, label=label)
    try:
        return await await_job(service.lane, job, request), job
    except ApiError:
        raise
    except Exception as exc:
        raise to_api_error(exc) from exc
    finally:
        service.metrics.observe_stage("queue_wait", job.wait_s * 1000.0)
