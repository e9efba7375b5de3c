"""The ASGI application: routes, middleware, error handlers, and the lifespan that loads the models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect

from pi_axera_sd import __version__
from pi_axera_sd.config import Settings
from pi_axera_sd.engine.pipeline import Pipeline
from pi_axera_sd.errors import PiAxeraError
from pi_axera_sd.interrogate.protocol import Interrogator
from pi_axera_sd.server.core.context import add_to_access_log
from pi_axera_sd.server.core.failures import ApiError, ClientGone, to_api_error
from pi_axera_sd.server.core.firstrun import FirstRunDownload
from pi_axera_sd.server.core.image_links import ImageLinks
from pi_axera_sd.server.core.lane import LaneUnavailable
from pi_axera_sd.server.core.live_preview import LivePreview
from pi_axera_sd.server.core.service import Service
from pi_axera_sd.server.dialects import apidoc
from pi_axera_sd.server.dialects.a1111 import OptionsStore
from pi_axera_sd.server.dialects.apidoc import allow_header, allowed_methods
from pi_axera_sd.server.dialects.problems import error_response
from pi_axera_sd.server.middleware.access import AccessMiddleware
from pi_axera_sd.server.middleware.auth import AuthMiddleware, Credentials
from pi_axera_sd.server.middleware.body_limit import BodyLimitMiddleware
from pi_axera_sd.server.routes import (
    a1111,
    a1111_meta,
    generate,
    interrogate,
    openai,
    ops,
    progress,
    prompt,
    web,
)

DESCRIPTION = """Stable Diffusion 1.5 + LCM-LoRA on one inference lane (Axera AX650N NPU, CPU or GPU).

* `POST /generate`: the original service's txt2img/img2img endpoint.
* `/sdapi/v1/...`: the AUTOMATIC1111 WebUI API subset its clients use.
* `/v1/models`, `/v1/images/...`: the OpenAI Images API (openai SDK, Open WebUI, LibreChat).
* `/health`, `/ready`, `/metrics`: operations.
"""


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    err = to_api_error(exc)
    add_to_access_log(request, error=err.message)
    return error_response(request.url.path, err)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the first matching route's methods only
        headers["Allow"] = allow_header(allowed_methods(request.app, request.url.path))
    err = ApiError(exc.status_code, str(exc.detail), headers=headers)
    return error_response(request.url.path, err)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI validates only query/path parameters here (bodies are parsed by the routes): a 400.
    assert isinstance(exc, RequestValidationError)
    message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return error_response(request.url.path, ApiError(400, message or "invalid request"))


def create_app(
    settings: Settings | None = None,
    pipeline: Pipeline | None = None,
    interrogator: Interrogator | None = None,
    first_run: FirstRunDownload | None = None,
) -> FastAPI:
    """The service as an ASGI app. Models load on the inference lane when the app starts (the
    lifespan), unless ``pipeline`` is given; ``interrogator`` defaults to the CLIP files found
    through ``settings`` (none: the interrogation routes answer 503)."""
    settings = settings or Settings()
    credentials = Credentials.from_settings(settings)  # a malformed API_AUTH fails here, at startup
    service = Service(settings, pipeline=pipeline, interrogator=interrogator, first_run=first_run)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        await asyncio.to_thread(service.stop, settings.shutdown_grace_s)

    middleware = [Middleware(AccessMiddleware, metrics=service.metrics)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["*"],
                allow_credentials="*" not in settings.cors_origins,
                expose_headers=["X-Request-ID", "X-Process-Time", "Retry-After"],
            )
        )
    middleware.append(Middleware(AuthMiddleware, credentials=credentials))
    middleware.append(Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes))
    middleware.append(Middleware(apidoc.OptionsMiddleware))

    # /docs and /redoc with their assets served from the fastapi-offline package: no CDN needed
    app = FastAPIOffline(
        title="Pi Axera SD",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        middleware=middleware,
    )
    app.state.service = service
    app.state.image_links = ImageLinks(settings.image_link_ttl_s)  # OpenAI "url" answers
    app.state.options = OptionsStore(
        save_images=settings.save_images,
        randn_source=settings.randn_source,
        cfg=settings.cfg,
        prompt_syntax=settings.prompt_syntax,
    )
    app.state.preview = LivePreview(lambda: app.state.options.read(None))
    for exc_class in (ApiError, PiAxeraError, LaneUnavailable, ClientGone, ClientDisconnect):
        app.add_exception_handler(exc_class, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for module in (generate, a1111, a1111_meta, progress, interrogate, openai, ops, prompt, web):
        app.include_router(module.router)
    apidoc.install(app)
    return app


__all__ = ["create_app"]
