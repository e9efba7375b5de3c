"""Per-request helpers shared by the routes: the service, the JSON body, what the access log
line should carry (parsed parameters, stage timings, the error message), and waiting for a lane
job, giving up the place if the client leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request

from pi_axera_sd.server.core.failures import ApiError, ClientGone, to_api_error
from pi_axera_sd.server.core.json_body import JsonLimits, decode_json
from pi_axera_sd.server.core.lane import Job, JobContext, Lane
from pi_axera_sd.server.core.service import Service

_SCOPE_KEY = "pi_axera_sd"
# Bodies above this are checked and parsed on a host thread: json.loads of a 20 MB image stalls
# the event loop.
_INLINE_JSON_BYTES = 256 * 1024


def service_of(request: Request) -> Service:
    return request.app.state.service


def log_context(scope: dict[str, Any]) -> dict[str, Any]:
    """The dict the access middleware logs for this request (request_id, params, timings, error)."""
    return scope.setdefault(_SCOPE_KEY, {})


def add_to_access_log(request: Request, **fields: Any) -> None:
    """Fields for this request's one access-log line (job, timings, params), written when it ends."""
    log_context(request.scope).update(fields)


def request_id(request: Request) -> str:
    return str(log_context(request.scope).get("request_id", "-"))


def json_limits(service: Service) -> JsonLimits:
    # Room for the largest structured-interrogation request the settings allow.
    return JsonLimits(max_items=max(JsonLimits().max_items, 2 * service.settings.max_structured_labels))


async def read_json(request: Request) -> Any:
    """The body as normalised JSON (see :mod:`pi_axera_sd.server.core.json_body`), whatever Content-Type
    the client sent (curl -d sends form encoding)."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise ClientGone("client disconnected while sending the body") from None
    service = service_of(request)
    if len(raw) <= _INLINE_JSON_BYTES:
        parsed = decode_json(raw, json_limits(service))
    else:
        parsed = await service.run_host_work(decode_json, raw, json_limits(service))
    add_to_access_log(request, params=parsed)
    return parsed


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
