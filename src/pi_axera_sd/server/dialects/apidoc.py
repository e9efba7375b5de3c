"""What the service tells clients about itself: the OpenAPI document, ``OPTIONS`` and ``Allow``.

Every route's error answers are added to the document here, in one place, so a route added later
is documented the same way: the body shape its path family uses (A1111's under ``/sdapi/``,
the original service's elsewhere, see :mod:`pi_axera_sd.server.dialects.problems`) for each status
it can answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from pi_axera_sd.server.dialects.problems import A1111_PREFIX, OPENAI_PREFIX, OpenAIError
from pi_axera_sd.server.middleware.auth import OPEN_PATHS


class ErrorResponse(BaseModel):
    """An error from ``/generate``, operations and other non-A1111 routes."""

    status: str = "error"
    error: str


class A1111Error(BaseModel):
    """An error under ``/sdapi/``, in AUTOMATIC1111's shape."""

    error: str
    detail: str
    body: str
    errors: Any = None


class Readiness(BaseModel):
    ready: bool
    status: str
    reason: str | None
    model: str | None
    queued: int
    running: bool
    interrogation: str


# Statuses every operation can answer, and those of operations that take a body or use the models.
_ALWAYS = {401: "authentication required (API_AUTH / API_TOKEN set)", 500: "unexpected server error"}
_WITH_BODY = {
    400: "malformed request: not UTF-8 JSON, nested too deep, NaN/Infinity, a used field malformed",
    413: "body or image over the configured limit",
    503: "queue full, models loading, or stopping (see Retry-After)",
}
_INTERRUPTED = {409: "interrupted (POST /sdapi/v1/interrupt) before an image was finished"}
_EXTRA = {  # (path, method) -> further statuses
    ("/sdapi/v1/interrogate", "post"): {404: "unknown interrogation model"},
    ("/sdapi/v1/sd-models", "get"): {503: "models still loading"},
    ("/generate", "post"): _INTERRUPTED,
    ("/v1/images/generations", "post"): _INTERRUPTED,
    ("/v1/images/edits", "post"): _INTERRUPTED,
}
_PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: FastAPI, path: str) -> set[str]:
    """Methods some route answers at ``path`` (HEAD with GET, OPTIONS always); empty: no route."""
    methods = set()
    for method in _PROBED:  # asked of the router itself, so included routers are covered too
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "app": app}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            methods.add(method)
    return methods | {"OPTIONS"} if methods else set()


def allow_header(methods: set[str]) -> str:
    return ", ".join(sorted(methods))


# Path prefix -> the model of its error bodies (longest prefix wins); a route family with its own
# error shape (see problems.error_body) registers it here so the document stays true.
ERROR_SHAPES: dict[str, type[BaseModel]] = {
    "/": ErrorResponse,
    A1111_PREFIX: A1111Error,
    OPENAI_PREFIX: OpenAIError,
}


def _error_model(path: str) -> type[BaseModel]:
    prefix = max((p for p in ERROR_SHAPES if path.startswith(p)), key=len, default="/")
    return ERROR_SHAPES[prefix]


def _error_content(path: str) -> dict[str, Any]:
    name = _error_model(path).__name__
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _document(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (*dict.fromkeys(ERROR_SHAPES.values()), Readiness):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))  # nested models become components too
        components[model.__name__] = model_schema
    for key in ("HTTPValidationError", "ValidationError"):
        components.pop(key, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # request validation errors are answered 400
            codes = dict(_ALWAYS)
            if "requestBody" in operation:
                codes |= _WITH_BODY
            codes |= _EXTRA.get((path, method), {})
            if path in OPEN_PATHS:
                codes.pop(401)
            for code, text in codes.items():
                entry = responses.setdefault(str(code), {"description": text})
                entry["content"] = _error_content(path)
    ready = schema["paths"].get("/ready", {}).get("get")
    if ready is not None:
        shape = {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}
        ready["responses"]["200"] = {"description": "ready", "content": shape}
        ready["responses"]["503"] = {"description": "loading, failed or stopping", "content": shape}
    metrics = schema["paths"].get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"] = {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    return schema


class OptionsMiddleware:
    """``OPTIONS`` on a path that exists: 204 with every method its routes answer (Starlette would
    say 405 naming the first route's only). A CORS preflight never gets here: CORSMiddleware,
    outside this one, answers it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            methods = allowed_methods(scope["app"], scope["path"])
            if methods:
                await Response(status_code=204, headers={"Allow": allow_header(methods)})(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """The corrected OpenAPI document (errors, /ready, /metrics)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            base = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = _document(base)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
