"""Checks ``serve`` makes before any model loads, so a configuration fault costs no load time and
exits 2 (never restarted by systemd) with one line: the port, the model folder, the runtimes the
folder needs, the requested variant.
"""

from __future__ import annotations

import importlib.util
import logging
import socket

from pi_axera_sd.config import DEFAULT_MODELS_DIR, Settings
from pi_axera_sd.engine.layout import ModelLayout
from pi_axera_sd.errors import PiAxeraError
from pi_axera_sd.printed_commands import command
from pi_axera_sd.runtime import runtime_for
from pi_axera_sd.wiring import runtime_options

log = logging.getLogger(__name__)


class ConfigError(PiAxeraError):
    """A setting or install that cannot work; the CLI prints it and exits 2."""


def check_port(host: str, port: int) -> None:
    """Bind and release ``host:port`` the way uvicorn will (SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"invalid setting PORT / --port = {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                "stop what uses it or choose another port"
            ) from exc


def check_models_dir(settings: Settings) -> None:
    """A model folder named by MODELS_DIR or ``--models`` must exist: a typo must not start the
    first-run download into a new folder. Only the default ``./models`` may be made by that download."""
    folder = settings.models_dir
    given = "models_dir" in settings.model_fields_set
    if not given or folder.is_dir() or folder.resolve() == DEFAULT_MODELS_DIR.resolve():
        return
    what = "is not a folder" if folder.exists() else "does not exist"
    raise ConfigError(
        f"invalid setting MODELS_DIR / --models = '{folder}': {what} (only the default ./models is "
        "created, by the first-run download)"
    )


def check_runtimes(layout: ModelLayout, settings: Settings) -> None:
    """Every runtime the model files need is installed (missing: the extra or wheel is named)."""
    from pi_axera_sd.settings_errors import install_command

    options = runtime_options(settings)
    files = {
        "text_encoder": layout.text_encoder,
        "unet": layout.unet,
        "vae_decoder": layout.vae_decoder,
        "vae_encoder": layout.vae_encoder,
        "vae_decoder_tiny": layout.vae_decoder_tiny,
    }
    for role, path in files.items():
        if path is None:
            continue
        runtime = runtime_for(path, options)
        if runtime == "openvino" and importlib.util.find_spec("openvino") is None:
            raise ConfigError(
                f"{role} ({path.name}) needs OpenVINO, which is not installed; install the 'openvino' "
                f"extra: {install_command('openvino')}"
            )
        if runtime == "axengine":
            from pi_axera_sd.runtime.axengine import import_axengine

            import_axengine()  # no wheel or no driver library: that fault's own message and exit code


def check_variant(layout: ModelLayout, settings: Settings) -> None:
    """A requested variant the folder lacks: a warning, or an error with ``require_variant``."""
    if not settings.variant:
        return
    marker = f".{settings.variant}."
    missing = [
        role
        for role, path in (("unet", layout.unet), ("vae_decoder", layout.vae_decoder))
        if path is not None and marker not in path.name
    ]
    if not missing:
        return
    message = (
        f"PI_AXERA_SD_VARIANT={settings.variant}: no {settings.variant} file for {', '.join(missing)} in "
        f"{layout.root} (make them with '{command('models', 'quantize', layout.root)}')"
    )
    if settings.require_variant:
        raise ConfigError(f"invalid setting {message}; PI_AXERA_SD_REQUIRE_VARIANT=1 forbids the fallback")
    log.warning(message + "; running the FP32 files", extra={"fields": {"variant_missing": missing}})
