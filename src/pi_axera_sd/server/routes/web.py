"""The browser page at ``/`` and its assets under ``/ui/``, shipped in the package (no build step,
no CDN). They hold no data, so they are served without authentication; the page asks for the
token or user/password itself and sends it with every API call."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from pi_axera_sd import __version__
from pi_axera_sd.server.core.failures import ApiError

router = APIRouter(include_in_schema=False)

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
ASSET_PREFIX = "/ui/"
# Assets are fetched as /ui/<name>?v=<package version>, so an upgrade is never served stale.
_CACHE = {"Cache-Control": "public, max-age=86400"}
_NO_STORE = {"Cache-Control": "no-cache"}  # the page itself: always the installed version


@cache
def _read(name: str) -> str:
    return resources.files("pi_axera_sd.web").joinpath(name).read_text(encoding="utf-8")


@router.get("/")
async def index() -> HTMLResponse:
    return HTMLResponse(_read("index.html").replace("{{version}}", __version__), headers=_NO_STORE)


@router.get(ASSET_PREFIX + "{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise ApiError(404, f"no such page asset: {name}", kind="NotFound")
    return Response(_read(name), media_type=ASSETS[name], headers=_CACHE)
