"""Per-request helpers shared by the routes: the service, the JSON body, and what the access log
line should carry (parsed parameters, stage timings, the error message)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.server.service import Service

_SCOPE_KEY = "pi_axera_sd"
# Bodies above this are parsed on a host thread: json.loads of a 20 MB image stalls the event loop.
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


async def read_json(request: Request) -> Any:
    """The body as JSON, whatever Content-Type the client sent (curl -d sends form encoding)."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidInput("request body is empty; send a JSON object")
    try:
        if len(raw) <= _INLINE_JSON_BYTES:
            parsed = json.loads(raw)
        else:
            parsed = await service_of(request).run_host(json.loads, raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("request body is not valid JSON") from None
    note(request, params=parsed)
    return parsed
