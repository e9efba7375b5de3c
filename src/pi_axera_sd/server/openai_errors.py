"""Errors in the OpenAI API's shape, for every answer under ``/v1/`` (auth and size refusals too):
``{"error": {"message", "type", "param", "code"}}``. The ``openai`` SDK picks its exception class
from the status code and reads ``message``/``param``/``code`` from this body."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

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
