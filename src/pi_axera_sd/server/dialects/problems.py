"""Errors as HTTP responses, in the shape each family of clients expects. Whose fault an error is
(its status, and whether it counts against the runtime) is decided below the dialects, in
:mod:`pi_axera_sd.server.core.failures`.

``/sdapi/...`` answers like AUTOMATIC1111: ``{"error": type, "detail": message, "body", "errors"}``.
``/v1/...`` answers like OpenAI: ``{"error": {"message", "type", "param", "code"}}`` (the ``openai``
SDK picks its exception class from the status code and reads ``message``/``param``/``code``).
Everything else (the original service's ``/generate``, health...) answers
``{"status": "error", "error": message}``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from pi_axera_sd.server.core.failures import ApiError

A1111_PREFIX = "/sdapi/"
OPENAI_PREFIX = "/v1/"
_CODES = {401: "invalid_api_key", 404: "not_found", 413: "payload_too_large"}


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
