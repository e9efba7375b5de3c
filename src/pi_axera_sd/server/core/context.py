"""Per-request helpers shared by the routes: the service, the JSON body, and what the access log
line should carry (parsed parameters, stage timings, the error message)."""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request

from pi_axera_sd.server.inputs import JsonLimits, decode_json
from pi_axera_sd.server.problems import ClientGone
from pi_axera_sd.server.service import Service

_SCOPE_KEY = "pi_axera_sd"
# Bodies above this are checked and parsed on a host thread: json.loads of a 20 MB image stalls
# the event loop.
_INLINE_JSON_BYTES = 256 * 1024


def service_of(request: Request) -> Service:
    return request.app.state.service


def log_context(scope: dict[str, Any]) -> dict[str, Any]:
    """The dict the access middleware logs for this request (request_id, params, timings, error)."""
    return scope.setdefault(_SCOPE_KEY, {})


def note(request: Request, **fields: Any) -> None:
    log_context(request.scope).update(fields)


def request_id(request: Request) -> str:
    return str(log_context(request.scope).get("request_id", "-"))


def json_limits(service: Service) -> JsonLimits:
    # Room for the largest structured-interrogation request the settings allow.
    return JsonLimits(max_items=max(JsonLimits().max_items, 2 * service.settings.max_structured_labels))


async def read_json(request: Request) -> Any:
    """The body as normalised JSON (see :mod:`pi_axera_sd.server.inputs`), whatever Content-Type
    the client sent (curl -d sends form encoding)."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise ClientGone("client disconnected while sending the body") from None
    service = service_of(request)
    if len(raw) <= _INLINE_JSON_BYTES:
        parsed = decode_json(raw, json_limits(service))
    else:
        parsed = await service.run_host(decode_json, raw, json_limits(service))
    note(request, params=parsed)
    return parsed
