"""The rest of the A1111 surface clients touch: options, model/sampler listings, png-info, memory.

Listings for features this service does not have (upscalers, VAEs, LoRAs, scripts...) answer with
what A1111 answers when none are installed, so clients that fill menus from them keep working.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pi_axera_sd.engine.imageio import decode_base64_payload, read_png_parameters
from pi_axera_sd.engine.infotext import parse_infotext
from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.safetext import valid_text
from pi_axera_sd.server.core.context import read_json, service_of
from pi_axera_sd.server.core.failures import ApiError
from pi_axera_sd.server.dialects.a1111 import SAMPLER
from pi_axera_sd.server.dialects.schemas import PngInfoRequest, openapi_body

log = logging.getLogger(__name__)
router = APIRouter(prefix="/sdapi/v1", tags=["a1111"])


def _model_or_503(request: Request):
    service = service_of(request)
    if service.model is None:
        raise ApiError(503, service.ready()[1], headers={"Retry-After": "5"})
    return service.model


@router.get("/options")
async def get_options(request: Request) -> dict[str, Any]:
    from pi_axera_sd.server.core.modelinfo import runtime_info

    service = service_of(request)
    options = request.app.state.options.read(service.model)
    if service.pipeline is not None:
        # our extension, beside A1111's keys: what runs the model (runtime=auto decides it)
        options["pi_axera_sd_runtime"] = runtime_info(service.pipeline)
    return options


@router.post("/options", openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}}})
async def set_options(request: Request) -> JSONResponse:
    posted = await read_json(request)
    if not isinstance(posted, dict):
        raise InvalidInput("options must be a JSON object")
    model = service_of(request).model
    wanted = posted.get("sd_model_checkpoint")
    if wanted and model is not None and wanted not in (model.title, model.name):
        log.warning("client asked for model %r; only %r is loaded", wanted, model.title)
    request.app.state.options.update(
        {k: v for k, v in posted.items() if k not in ("sd_model_checkpoint", "sd_checkpoint_hash")}
    )
    return JSONResponse(None)  # A1111 answers null


@router.get("/sd-models")
async def sd_models(request: Request) -> list[dict[str, Any]]:
    model = _model_or_503(request)
    return [
        {
            "title": model.title,
            "model_name": model.name,
            "hash": model.hash,
            "sha256": model.sha256,
            "filename": model.filename,
            "config": None,
        }
    ]


@router.get("/samplers")
async def samplers() -> list[dict[str, Any]]:
    return [{"name": SAMPLER, "aliases": ["lcm", "k_lcm"], "options": {}}]


@router.get("/schedulers")
async def schedulers() -> list[dict[str, Any]]:
    # LCM picks its own timesteps; "automatic" is what A1111 calls "let the sampler decide".
    return [
        {
            "name": "automatic",
            "label": "Automatic",
            "aliases": None,
            "default_rho": -1,
            "need_inner_model": False,
        }
    ]


@router.get("/upscalers")
async def upscalers() -> list[dict[str, Any]]:
    return [{"name": "None", "model_name": None, "model_path": None, "model_url": None, "scale": 4}]


@router.get("/scripts")
async def scripts() -> dict[str, list[str]]:
    return {"txt2img": [], "img2img": []}


@router.get("/embeddings")
async def embeddings() -> dict[str, dict]:
    return {"loaded": {}, "skipped": {}}


def _empty_list() -> list:
    return []


@router.get("/sd-vae")
async def sd_vae(request: Request) -> list[dict[str, str]]:
    """The optional TAESD decoder, selectable with override_settings.sd_vae = "taesd"."""
    pipeline = service_of(request).pipeline
    if pipeline is None or pipeline.vae_decoder_tiny is None:
        return []
    return [{"model_name": "taesd", "filename": str(pipeline.vae_decoder_tiny.path)}]


for _path in (
    "/latent-upscale-modes",
    "/sd-modules",
    "/prompt-styles",
    "/loras",
    "/hypernetworks",
    "/face-restorers",
    "/realesrgan-models",
    "/script-info",
    "/extensions",
):
    router.add_api_route(_path, _empty_list, methods=["GET"], summary="none available")

for _path in (
    "/refresh-checkpoints",
    "/refresh-vae",
    "/refresh-loras",
    "/unload-checkpoint",
    "/reload-checkpoint",
):
    router.add_api_route(_path, lambda: None, methods=["POST"], summary="nothing to do: one fixed model")


@router.get("/cmd-flags")
async def cmd_flags(request: Request) -> dict[str, Any]:
    settings = service_of(request).settings
    # Never the credentials themselves.
    return {
        "api": True,
        "nowebui": True,
        "listen": settings.host not in ("127.0.0.1", "localhost", "::1"),
        "port": settings.port,
        "api_auth": None,
        "ckpt_dir": str(settings.models_dir),
        "data_dir": str(Path.cwd()),
    }


def _meminfo() -> dict[str, int]:
    values = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values


@router.get("/memory")
async def memory() -> dict[str, Any]:
    info = _meminfo()
    total, free = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    return {
        "ram": {"free": free, "used": total - free, "total": total, "process_peak_rss": peak_rss},
        "cuda": {"error": "not a CUDA service (the models run on the NPU or through ONNX Runtime)"},
    }


@router.post("/png-info", openapi_extra=openapi_body(PngInfoRequest, required=("image",)))
async def png_info(request: Request) -> dict[str, Any]:
    service = service_of(request)
    req = PngInfoRequest.parse(await read_json(request))
    if not req.image:
        raise InvalidInput("image is required")
    return await service.run_host_work(_png_info, req.image, service.settings.max_image_bytes)


def _png_info(image: str, max_bytes: int) -> dict[str, Any]:
    """On a host thread: a PNG's text chunks can hold megabytes (compressed) to inflate and parse."""
    text, chunks = read_png_parameters(decode_base64_payload(image, max_bytes))
    items = {k: valid_text(v) if isinstance(v, str) else v for k, v in chunks.items() if k != "parameters"}
    text = valid_text(text) if text else ""
    return {"info": text, "items": items, "parameters": parse_infotext(text) if text else {}}
