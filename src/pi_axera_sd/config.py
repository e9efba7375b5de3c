"""All settings, from environment variables (the original service's names where it has one) and CLI flags.

The original service's variables keep their plain names (``HOST``, ``PORT``, ``UNET_MODEL``...);
every other setting is ``PI_AXERA_SD_<FIELD>`` (e.g. ``PI_AXERA_SD_QUEUE_SIZE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pi_axera_sd.defaults import (
    DEFAULT_RANDN_SOURCE,
    DEFAULT_VAE,
    MAX_CFG_SCALE,
    MAX_PROMPT_CHUNKS,
    RANDN_SOURCE_RULE,
    AxProvider,
    Device,
    Runtime,
    Vae,
    check_deep_cache_interval,
    randn_source_name,
)

PREFIX = "PI_AXERA_SD_"
DEFAULT_MODELS_DIR = Path("models")  # made by the first-run download when missing; any other must exist


def _split_list(value: object) -> object:
    """A list setting from the environment or a flag: a JSON list or comma-separated words."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        import json

        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value  # validation then names the setting and the bad value
    return [part.strip() for part in text.split(",") if part.strip()]


# NoDecode: pydantic-settings would otherwise demand JSON and raise before validation can explain.
StrList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


def _env(*names: str, field: str) -> AliasChoices:
    """Accept the original service's plain variable names and the prefixed form of the field."""
    return AliasChoices(*names, f"{PREFIX}{field.upper()}", field)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", populate_by_name=True)

    # ---- models and runtimes -----------------------------------------------------------------
    models_dir: Path = Field(DEFAULT_MODELS_DIR, validation_alias=_env("MODELS_DIR", field="models_dir"))
    text_model_dir: Path | None = Field(None, validation_alias=_env("TEXT_MODEL_DIR", field="text_model_dir"))
    text_encoder_model: Path | None = Field(
        None, validation_alias=_env("TEXT_ENCODER_MODEL", field="text_encoder_model")
    )
    unet_model: Path | None = Field(None, validation_alias=_env("UNET_MODEL", field="unet_model"))
    vae_decoder_model: Path | None = Field(
        None, validation_alias=_env("VAE_DECODER_MODEL", field="vae_decoder_model")
    )
    vae_encoder_model: Path | None = Field(
        None, validation_alias=_env("VAE_ENCODER_MODEL", field="vae_encoder_model")
    )
    time_input_txt2img: Path | None = Field(
        None, validation_alias=_env("TIME_INPUT_TXT2IMG", field="time_input_txt2img")
    )
    time_input_img2img: Path | None = Field(
        None, validation_alias=_env("TIME_INPUT_IMG2IMG", field="time_input_img2img")
    )
    runtime: Runtime = "auto"
    device: Device = "cpu"  # ONNX Runtime device
    threads: int = Field(0, ge=0)
    ax_provider: AxProvider | None = None
    precision: Literal["f32", "bf16", "f16"] | None = None  # OpenVINO (default: the device's choice)
    variant: Literal["int8"] | None = None  # int8: use <component>.int8.xml (OpenVINO) if present
    # OpenVINO keeps compiled models here, so a restart imports them instead of compiling again
    openvino_cache: bool = True
    openvino_cache_dir: Path | None = None  # default: $XDG_CACHE_HOME/pi-axera-sd/openvino
    openvino_release_mapped: bool = True  # unmap model-file pages once compiled (runtime/ovmemory.py)
    npu_device: int | None = Field(None, ge=0)  # M.2 card index (AXCLRT provider); None = card 0
    npu_wait_s: float = Field(120.0, ge=0)  # start-up waits this long for an NPU that is not up yet
    reopen_sessions: bool = True  # on max_runtime_failures, reopen the models once before exiting 3
    require_variant: bool = False  # a missing variant file is an error (exit 2), not a warning
    text_cache_size: int = Field(128, ge=1)
    vae: Vae = DEFAULT_VAE  # default VAE decoder; requests may override
    # DeepCache: 0 off; N >= 2 runs the full UNet every N steps and its shallow path between them
    # (needs unet_deep.onnx + unet_shallow.onnx from `models export --deep-cache`)
    deep_cache: int = 0
    # LCM models with a guidance embedding (timestep_cond): default from the model's config, else 8.5
    guidance_scale: float | None = Field(None, gt=0)
    auto_download: bool = True  # serve: fetch the platform's default model into an empty models_dir
    default_model: str | None = None  # what that fetches (preset or repo id); default: axera or openvino
    randn_source: str = DEFAULT_RANDN_SOURCE  # CPU (torch's generator) | PCG64; A1111's option name
    # A1111's prompt language (weights, BREAK, long prompts, editing, LoRA tags); off: literal text
    prompt_syntax: bool = True
    max_prompt_chunks: int = Field(MAX_PROMPT_CHUNKS, ge=1)  # 75-token chunks a long prompt may fill
    cfg: bool = False  # classifier-free guidance when a request's cfg_scale > 1 (two UNet runs a step)
    max_cfg_scale: float = Field(MAX_CFG_SCALE, gt=1)  # requests above it are lowered to it

    # ---- HTTP service ------------------------------------------------------------------------
    host: str = Field("127.0.0.1", validation_alias=_env("HOST", field="host"))
    port: int = Field(5000, ge=1, le=65535, validation_alias=_env("PORT", field="port"))
    output_dir: Path = Field(
        Path("txt2img_server_output"), validation_alias=_env("OUTPUT_DIR", field="output_dir")
    )
    save_images: bool = False  # opt-in copy of every image to output_dir
    image_link_ttl_s: float = Field(600.0, gt=0)  # OpenAI response_format "url": how long links live
    queue_size: int = Field(8, ge=1)  # jobs waiting for the inference lane; more -> 503
    max_images_per_request: int = Field(8, ge=1)  # cap on A1111 batch_size * n_iter
    max_body_bytes: int = Field(48 * 1024 * 1024, ge=1024)
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=1)
    png_compress_level: int = Field(4, ge=0, le=9)
    api_auth: SecretStr | None = None  # "user:pass[,user2:pass2]" (A1111's --api-auth)
    api_token: SecretStr | None = None  # bearer token
    cors_origins: StrList = Field(default_factory=list)
    max_runtime_failures: int = Field(3, ge=1)  # consecutive runtime errors before the process exits
    listen_after_load: bool = False  # open the port only once the models are loaded (seed behaviour)
    shutdown_grace_s: float = Field(60.0, ge=0)
    # SIGTERM: report not ready (GET /ready 503) but keep taking work this long, so a load balancer's
    # health check moves traffic away before the listener closes; 0 = stop at once.
    drain_s: float = Field(0.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_max_string: int = Field(300, ge=32)  # characters of any one string in a log line

    # ---- interrogation (CLIP) ------------------------------------------------------------------
    clip_dir: Path = Field(Path("models/clip"), validation_alias=_env("CLIP_DIR", field="clip_dir"))
    clip_vision_model: Path | None = Field(
        None, validation_alias=_env("CLIP_VISION_MODEL", field="clip_vision_model")
    )
    clip_text_model: Path | None = Field(
        None, validation_alias=_env("CLIP_TEXT_MODEL", field="clip_text_model")
    )
    interrogate_tags_file: Path | None = Field(
        None, validation_alias=_env("INTERROGATE_TAGS_FILE", field="interrogate_tags_file")
    )
    embedding_cache_dir: Path | None = None  # default: <clip_dir>/cache
    max_structured_labels: int = Field(2000, ge=1)
    # prompt templates for label embeddings ("{}" = the label); several are averaged (JSON list in env)
    interrogate_templates: StrList = Field(default_factory=lambda: ["a photo of a {}"], min_length=1)
    # OpenVINO precision of the CLIP towers. FP32 on every CPU: one image-tower run per request is
    # cheap, and BF16 (OpenVINO's default where the CPU has it) moves scores by ~0.01, which flips
    # tags at a threshold and makes answers depend on the CPU. bf16 trades that for speed.
    clip_precision: Literal["f32", "bf16", "f16"] = "f32"
    clip_text_batch: int = Field(64, ge=1)  # labels per text-tower run while building the cache

    @field_validator("deep_cache")
    @classmethod
    def _deep_cache_interval(cls, value: int) -> int:
        return check_deep_cache_interval(value)

    @field_validator("randn_source", mode="before")
    @classmethod
    def _known_randn_source(cls, value: object) -> str:
        name = randn_source_name(value)
        if name is None:
            raise ValueError(f"{RANDN_SOURCE_RULE}, not {value!r}")
        return name
