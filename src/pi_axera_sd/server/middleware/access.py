"""The outermost middleware: request id, ``X-Process-Time``, metrics, and one JSON log line per
request with its parameters redacted. It also turns an unexpected exception into a JSON 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pi_axera_sd.server.core.context import log_context
from pi_axera_sd.server.core.failures import ApiError
from pi_axera_sd.server.core.logs import ACCESS_LOGGER
from pi_axera_sd.server.core.metrics import Metrics
from pi_axera_sd.server.dialects.problems import error_body

log = logging.getLogger(ACCESS_LOGGER)
errors_log = logging.getLogger(__name__)

_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Polled endpoints: their lines go to debug so a polling client does not flood the journal.
QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics", "/sdapi/v1/progress"})
READY_ROUTE = "/ready"


def _route_of(scope: Scope) -> str:
    """The route template (bounded label set for metrics), not the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        context = log_context(scope)
        context["request_id"] = rid
        status = 0
        body_bytes = 0

        async def counting_receive() -> Message:
            nonlocal body_bytes
            message = await receive()
            if message["type"] == "http.request":
                body_bytes += len(message.get("body", b""))
            return message

        async def stamped_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                headers["X-Process-Time"] = f"{time.perf_counter() - start:.4f}"
            await send(message)

        try:
            await self.app(scope, counting_receive, stamped_send)
        except asyncio.CancelledError:
            # uvicorn cancels requests still running when the shutdown grace period ends.
            context.setdefault("error", "the service stopped before the request finished")
            if status == 0:
                err = ApiError(503, context["error"], headers={"Retry-After": "10"})
                with contextlib.suppress(Exception):
                    await _send_error(scope, stamped_send, err)
            raise
        except Exception as exc:
            errors_log.exception("unhandled error", extra={"fields": {"request_id": rid}})
            context.setdefault("error", f"internal error: {type(exc).__name__}")
            if status == 0:
                err = ApiError(500, f"internal error: {type(exc).__name__}", kind=type(exc).__name__)
                await _send_error(scope, stamped_send, err)
        finally:
            self._finish(scope, context, status, time.perf_counter() - start, body_bytes)

    def _finish(self, scope: Scope, context: dict[str, Any], status: int, seconds: float, body: int) -> None:
        route = _route_of(scope)
        self.metrics.requests.labels(route, scope["method"], str(status)).inc()
        self.metrics.request_seconds.labels(route).observe(seconds)
        fields: dict[str, Any] = {
            "request_id": context.get("request_id"),
            "method": scope["method"],
            "route": route,
            "path": scope["path"],  # never the query string: it may carry a token
            "status": status,
            "duration_ms": round(seconds * 1000.0, 2),
            "client": (scope.get("client") or ("-",))[0],
        }
        if body:
            fields["body_bytes"] = body
        if "params" in context:
            fields["params"] = context["params"]  # the formatter redacts and cuts every string
        for key in ("timings", "error", "job"):
            if key in context:
                fields[key] = context[key]
        # /ready's 503 is its "not ready" answer, not a failure: a load balancer polls it every second.
        quiet = route in QUIET_ROUTES and (status < 400 or (route == READY_ROUTE and status == 503))
        level = logging.DEBUG if quiet else logging.INFO
        log.log(level, "%s %s %s", scope["method"], scope["path"], status, extra={"fields": fields})


async def _send_error(scope: Scope, send: Send, err: ApiError) -> None:
    payload = json.dumps(error_body(scope["path"], err)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
