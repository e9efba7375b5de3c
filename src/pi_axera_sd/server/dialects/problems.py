"""Errors as HTTP responses, in the shape each family of clients expects, and the one place that
decides whose fault an error is: :func:`to_api_error` gives the status, and only a 500 (the
runtime or the model failed) counts toward the restart limit (:func:`counts_as_runtime_failure`).

``/sdapi/...`` answers like AUTOMATIC1111: ``{"error": type, "detail": message, "body", "errors"}``.
``/v1/...`` answers like OpenAI: ``{"error": {"message", "type", "param", "code"}}`` (the ``openai``
SDK picks its exception class from the status code and reads ``message``/``param``/``code``).
Everything else (the seed's ``/generate``, health...) answers ``{"status": "error", "error": message}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

from pi_axera_sd.errors import Cancelled, InvalidInput, PayloadTooLarge
from pi_axera_sd.interrogate.errors import WarmingUp
from pi_axera_sd.server.core.lane import LaneUnavailable, QueueFull

log = logging.getLogger(__name__)

A1111_PREFIX = "/sdapi/"
OPENAI_PREFIX = "/v1/"
_CODES = {401: "invalid_api_key", 404: "not_found", 413: "payload_too_large"}
# A taxonomy build takes minutes on a Pi; polling faster than this only adds load.
WARMING_UP_RETRY_S = "10"
# nginx's "client closed request": only ever seen in our logs and metrics, never by a client.
CLIENT_CLOSED = 499


class ClientGone(Exception):
    """The client disconnected (while sending its body, or while its job waited: the job was
    withdrawn)."""


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind or _default_kind(status)
        self.headers = dict(headers or {})
        self.errors = errors


def _default_kind(status: int) -> str:
    return {
        400: "BadRequest",
        401: "Unauthorized",
        404: "NotFound",
        409: "Interrupted",
        413: "PayloadTooLarge",
        503: "ServiceUnavailable",
    }.get(status, "HTTPException" if status < 500 else "RuntimeError")


def to_api_error(exc: BaseException) -> ApiError:
    """Map anything a handler or a job raised to a status code and a message for the client."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PayloadTooLarge):
        return ApiError(413, str(exc), kind="PayloadTooLarge")
    if isinstance(exc, InvalidInput):
        return ApiError(400, str(exc), kind="InvalidInput")
    if isinstance(exc, QueueFull):
        return ApiError(503, exc.reason, kind="QueueFull", headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, LaneUnavailable):
        return ApiError(
            503, exc.reason, kind="ServiceUnavailable", headers={"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, WarmingUp):
        return _warming_up(exc)
    if isinstance(exc, Cancelled):
        return ApiError(409, "interrupted before an image was finished", kind="Interrupted")
    if isinstance(exc, ClientGone | ClientDisconnect):
        return ApiError(CLIENT_CLOSED, str(exc) or "client disconnected while queued", kind="ClientGone")
    if isinstance(exc, UnicodeError):  # text from the request that a codec refused: never the runtime
        return ApiError(400, f"text is not valid Unicode: {exc.reason}", kind="InvalidInput")
    return ApiError(500, f"inference failed: {type(exc).__name__}: {exc}", kind=type(exc).__name__)


def _warming_up(exc: WarmingUp) -> ApiError:
    state = exc.state
    return ApiError(
        503,
        f"interrogation model is warming up: {state.message} "
        f"({state.done}/{state.total} labels, {state.progress:.0%})",
        headers={"Retry-After": WARMING_UP_RETRY_S},
        errors={
            "warming_up": True,
            "progress": round(state.progress, 4),
            "done": state.done,
            "total": state.total,
        },
    )


def counts_as_runtime_failure(exc: BaseException) -> bool:
    """True for failures of the runtime or the model (a 500), which count toward the restart limit;
    the client's mistakes (4xx), interrupts and refusals (503) say nothing about the accelerator."""
    return to_api_error(exc).status == 500


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """The body of every error answer under ``/v1/`` (documented so in the OpenAPI document)."""

    error: OpenAIErrorDetail


def _snake(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()


def openai_error_body(status: int, message: str, kind: str, param: Any = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": param if isinstance(param, str) else None,
            "code": _CODES.get(status) or _snake(kind),
        }
    }


def error_body(path: str, err: ApiError) -> dict[str, Any]:
    if path.startswith(OPENAI_PREFIX):
        return openai_error_body(err.status, err.message, err.kind, err.errors)
    if path.startswith(A1111_PREFIX):
        return {"error": err.kind, "detail": err.message, "body": "", "errors": err.errors or err.message}
    return {"status": "error", "error": err.message}


def error_response(path: str, err: ApiError) -> JSONResponse:
    return JSONResponse(error_body(path, err), status_code=err.status, headers=err.headers)
