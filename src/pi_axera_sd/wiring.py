"""Settings turned into what the engine and the runtimes take: the model layout, the runtime
options (for the SD models and for CLIP), the image limits.

``config.Settings`` is the bottom layer and imports nothing of the engine or the runtimes; the
objects those layers need are built here, from it, by whoever starts them (``serve``, the CLI).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pi_axera_sd.config import Settings
from pi_axera_sd.engine.imageio import ImageLimits
from pi_axera_sd.engine.layout import ModelLayout, resolve_layout
from pi_axera_sd.runtime import RuntimeOptions


def runtime_options(settings: Settings) -> RuntimeOptions:
    """The options every SD model session opens with."""
    from pi_axera_sd.runtime.choice import effective_runtime

    return RuntimeOptions(
        runtime=effective_runtime(settings.runtime, settings.device),
        device=settings.device,
        threads=settings.threads,
        ax_provider=settings.ax_provider,
        npu_device=settings.npu_device,
        precision=settings.precision,
        cache_dir=openvino_cache_root(settings),
        release_mapped=settings.openvino_release_mapped,
    )


def clip_runtime_options(settings: Settings) -> RuntimeOptions:
    """The CLIP towers' sessions: the engine's options at ``clip_precision``."""
    return replace(runtime_options(settings), precision=settings.clip_precision)


def openvino_cache_root(settings: Settings) -> Path | None:
    if not settings.openvino_cache:
        return None
    from pi_axera_sd.runtime.ovcache import default_cache_root

    return settings.openvino_cache_dir or default_cache_root()


def prefers_axmodel(settings: Settings) -> bool:
    """Whether a ``.axmodel`` is taken where both it and an ``.onnx`` exist."""
    if settings.runtime == "axengine":
        return True
    if settings.runtime != "auto":
        return False
    from pi_axera_sd.runtime.axengine import axengine_available

    return axengine_available()


def model_layout(settings: Settings) -> ModelLayout:
    """The model folder's files, with each file setting (``UNET_MODEL``...) taking precedence."""
    overrides = {
        "text_encoder": settings.text_encoder_model,
        "unet": settings.unet_model,
        "vae_decoder": settings.vae_decoder_model,
        "vae_encoder": settings.vae_encoder_model,
        "time_input_txt2img": settings.time_input_txt2img,
        "time_input_img2img": settings.time_input_img2img,
    }
    return resolve_layout(
        settings.models_dir,
        text_dir=settings.text_model_dir,
        overrides={k: v for k, v in overrides.items() if v is not None},
        prefer_axmodel=prefers_axmodel(settings),
        variant=settings.variant,
    )


def pipeline_options(settings: Settings) -> dict[str, object]:
    """The engine's own settings, as :meth:`Pipeline.load` keywords (serve and the CLI alike)."""
    options: dict[str, object] = {
        "text_cache_size": settings.text_cache_size,
        "max_prompt_chunks": settings.max_prompt_chunks,
        "deep_cache": settings.deep_cache,
    }
    if settings.guidance_scale is not None:
        options["guidance_scale"] = settings.guidance_scale
    return options


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(max_encoded_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
