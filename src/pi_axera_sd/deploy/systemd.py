"""The systemd unit ``pi_axera_sd_generator.service`` (the original service's name), written for this install.

Restart policy (the codes of :mod:`pi_axera_sd.exitcodes`): exit 3 (the runtime kept failing) and
75 (accelerator not ready yet) restart (``RestartForceExitStatus``), as do crashes by signal
(``Restart=on-abnormal``); exit 2 (configuration) never does. ``StartLimitIntervalSec`` /
``StartLimitBurst`` end a restart loop. ``Type=notify``: the service sends READY=1 once its models
are loaded (``deploy.notify``).
Stop: SIGTERM makes the service finish its running job within ``shutdown_grace_s`` and exit 0;
``TimeoutStopSec`` leaves room for that before systemd resorts to SIGKILL.
"""

from __future__ import annotations

import getpass
import grp
import json
import math
import os
import pwd
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from pi_axera_sd import exitcodes
from pi_axera_sd.config import Settings

UNIT_NAME = "pi_axera_sd_generator.service"
STATE_DIRECTORY = "pi-axera-sd"
ENV_FILE = "/etc/pi-axera-sd.env"
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Settings always written so the unit shows where things are, even at their defaults.
_ALWAYS = ("models_dir", "host", "port", "output_dir")
_STOP_MARGIN_S = 15
RESTART_SEC = 10
START_LIMIT_INTERVAL_S = 600  # 10 starts in 10 minutes: ~100 s of "NPU not ready" retries at boot
START_LIMIT_BURST = 10
START_TIMEOUT_S = 900  # READY=1 comes after the models load (a minute or more on a Pi)


@dataclass(frozen=True)
class Unit:
    exec_start: list[str]
    working_directory: Path
    user: str | None
    group: str | None
    environment: dict[str, str]  # literal values
    state_environment: dict[str, str] = field(default_factory=dict)  # paths inside the StateDirectory
    writable_paths: list[Path] = field(default_factory=list)
    stop_timeout_s: int = 75
    notes: list[str] = field(default_factory=list)


def installed_command() -> list[str]:
    """The ``pi-axera-sd`` of the running install (its venv's script), as an absolute path."""
    beside = Path(sys.executable).with_name("pi-axera-sd")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("pi-axera-sd")
    if found:
        return [str(Path(found).resolve())]
    return [str(Path(sys.executable).absolute()), "-m", "pi_axera_sd"]


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)  # pydantic-settings reads lists as JSON
    return str(value)


def _absolute(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def settings_environment(
    settings: Settings, given: Iterable[str], base: Path
) -> tuple[dict[str, str], list[str]]:
    """Environment= entries for the settings that differ from their defaults, were given as flags,
    or are always shown. Secrets are left out (returned as notes): a unit file is world-readable."""
    from pi_axera_sd.cli.settings_flags import env_name

    given = set(given)
    env: dict[str, str] = {}
    notes: list[str] = []
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        default = info.get_default(call_default_factory=True)
        if name not in _ALWAYS and name not in given and value == default:
            continue
        if isinstance(value, SecretStr):
            notes.append(f"{env_name(name, info)} is set but not written here; put it in {ENV_FILE}")
            continue
        if value is None:
            continue
        if isinstance(value, Path):
            value = _absolute(value, base)
        env[env_name(name, info)] = _env_value(value)
    return env, notes


def _default_user() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _primary_group(user: str) -> str | None:
    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except (KeyError, OSError):
        return None


def unit_for_install(
    settings: Settings,
    *,
    user: str | None = None,
    group: str | None = None,
    extra_env: Iterable[str] = (),
    working_directory: Path | None = None,
    given: Iterable[str] = (),
) -> Unit:
    base = (working_directory or Path.cwd()).absolute()
    env, notes = settings_environment(settings, given, base)
    for item in extra_env:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise ValueError(f"--env wants KEY=VALUE, got {item!r}")
        env[key] = value
    # No first-run model download under systemd (air-gapped boards): unless asked for, it is off.
    env.setdefault("PI_AXERA_SD_AUTO_DOWNLOAD", "0")
    # The CLIP embedding cache must be writable under ProtectSystem=strict: keep it in the state dir.
    state_env = (
        {} if "PI_AXERA_SD_EMBEDDING_CACHE_DIR" in env else {"PI_AXERA_SD_EMBEDDING_CACHE_DIR": "clip-cache"}
    )
    # So is OpenVINO's compiled-model cache (the service user's home may be read-only or absent).
    if "PI_AXERA_SD_OPENVINO_CACHE_DIR" not in env:
        state_env["PI_AXERA_SD_OPENVINO_CACHE_DIR"] = "openvino-cache"
    user = user or _default_user()
    writable = [_absolute(settings.output_dir, base)]
    if settings.embedding_cache_dir is not None:
        writable.append(_absolute(settings.embedding_cache_dir, base))
    if settings.openvino_cache_dir is not None:
        writable.append(_absolute(settings.openvino_cache_dir, base))
    return Unit(
        exec_start=[*installed_command(), "serve"],
        working_directory=base,
        user=None if user == "root" else user,
        group=group or (None if user == "root" else _primary_group(user)),
        environment=env,
        state_environment=state_env,
        writable_paths=writable,
        stop_timeout_s=math.ceil(settings.shutdown_grace_s) + _STOP_MARGIN_S,
        notes=notes,
    )


def _quote(text: str) -> str:
    """One systemd word: specifiers (%) and variables ($) kept literal, spaces quoted."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"newlines cannot appear in a unit value: {text!r}")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"' if re.search(r'[\s"\'\\;]', text) or not text else escaped


def _env_line(key: str, value: str, *, specifiers: bool = False) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"newlines cannot appear in {key}")
    literal = value if specifiers else value.replace("%", "%%")
    literal = literal.replace("\\", "\\\\").replace('"', '\\"')
    return f'Environment="{key}={literal}"'


def render_unit(unit: Unit) -> str:
    lines = [
        "# Written by 'pi-axera-sd systemd'. Install:",
        f"#   sudo cp {UNIT_NAME} /etc/systemd/system/ && sudo systemctl daemon-reload",
        f"#   sudo systemctl enable --now {UNIT_NAME}",
        f"#   sudo journalctl -u {UNIT_NAME} -f",
        *(f"# NOTE: {note}" for note in unit.notes),
        "[Unit]",
        "Description=Pi Axera SD image generator (SD1.5 + LCM-LoRA, A1111-compatible API)",
        "After=network-online.target",
        "Wants=network-online.target",
        "# Give up after this many starts in this window (a restart loop stays visible as 'failed').",
        f"StartLimitIntervalSec={START_LIMIT_INTERVAL_S}",
        f"StartLimitBurst={START_LIMIT_BURST}",
        "",
        "[Service]",
        "# READY=1 is sent once the models are loaded, STOPPING=1 when a stop begins.",
        "Type=notify",
        "NotifyAccess=main",
        f"TimeoutStartSec={START_TIMEOUT_S}",
    ]
    if unit.user:
        lines.append(f"User={unit.user}")
    if unit.group:
        lines.append(f"Group={unit.group}")
    lines += [
        f"WorkingDirectory={_quote(str(unit.working_directory))}",
        *(_env_line(k, v) for k, v in unit.environment.items()),
        # %S is systemd's state root (/var/lib), so these follow StateDirectory=.
        *(
            _env_line(k, f"%S/{STATE_DIRECTORY}/{v.replace('%', '%%')}", specifiers=True)
            for k, v in unit.state_environment.items()
        ),
        "# Secrets (PI_AXERA_SD_API_AUTH, PI_AXERA_SD_API_TOKEN) go here, mode 600; optional.",
        f"EnvironmentFile=-{ENV_FILE}",
        "ExecStart=" + " ".join(_quote(arg) for arg in unit.exec_start),
        "# Exit codes (pi_axera_sd.exitcodes): 2 = configuration (never restarted), 3 = runtime kept",
        "# failing, 75 = accelerator not ready yet: only those two, and crashes by signal, restart.",
        "Restart=on-abnormal",
        "RestartForceExitStatus=" + " ".join(str(code) for code in exitcodes.RESTARTABLE),
        f"RestartPreventExitStatus={exitcodes.CONFIG}",
        f"RestartSec={RESTART_SEC}",
        "KillSignal=SIGTERM",
        "# SIGTERM: the running job finishes (PI_AXERA_SD_SHUTDOWN_GRACE_S), then exit 0.",
        f"TimeoutStopSec={unit.stop_timeout_s}",
        f"StateDirectory={STATE_DIRECTORY}",
        "# Hardening. PrivateDevices stays off: the AX650N NPU is reached through /dev/ax* nodes.",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "PrivateDevices=no",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "# Writable despite ProtectSystem/ProtectHome ('-': fine if it does not exist yet).",
        *(f"ReadWritePaths=-{_quote(str(path))}" for path in unit.writable_paths),
        f"SyslogIdentifier={UNIT_NAME.removesuffix('.service')}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (systemd keys repeat, so configparser does not fit)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"not a unit line: {raw!r}")
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections
