"""Whose fault an error is, decided in one place, below the dialects: :func:`to_api_error` gives the
HTTP status and message for anything a handler or a job raised, and only a 500 (the runtime or the
model failed) counts toward the restart limit (:func:`counts_as_runtime_failure`). The client's
mistakes are 4xx; refusals (a full queue, a service not ready) are 503 with ``Retry-After``.
How each dialect words an error is :mod:`pi_axera_sd.server.dialects.problems`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect

from pi_axera_sd.errors import Cancelled, InvalidInput, PayloadTooLarge
from pi_axera_sd.interrogate.errors import WarmingUp
from pi_axera_sd.server.core.lane import LaneUnavailable, QueueFull

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
