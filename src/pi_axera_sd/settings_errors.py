"""Configuration faults as one line each: the setting (variable and flag), the bad value, what is
allowed. The CLI prints them and exits 2 (:data:`pi_axera_sd.exitcodes.CONFIG`).
"""

from __future__ import annotations

import sys

from pydantic import AliasChoices, ValidationError

# Import name of an optional dependency -> the extra of pyproject.toml that installs it.
EXTRAS = {
    "torch": "export",
    "diffusers": "export",
    "transformers": "export",
    "peft": "export",
    "onnx": "export",
    "openvino": "openvino",
    "nncf": "openvino",
    "matplotlib": "plot",
    "open_clip": "open-clip",
}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LOCK_FILE = "requirements.lock"  # the clone's pinned dependency tree (see the Makefile's `lock` target)


def _field_for(loc: str) -> str:
    from pi_axera_sd.config import Settings

    if loc in Settings.model_fields:
        return loc
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and loc in alias.choices:
            return name
    return loc


def setting_label(field: str) -> str:
    """``port`` -> ``PORT / --port``: the names a user may have set it by."""
    from pi_axera_sd.cli.settings_flags import env_name
    from pi_axera_sd.config import Settings

    info = Settings.model_fields.get(field)
    env = env_name(field, info) if info else field
    return f"{env} / --{field.replace('_', '-')}"


def _allowed(error: dict) -> str:
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return f"allowed: {ctx['expected']}"
    return error["msg"][0].lower() + error["msg"][1:]


def validation_lines(exc: ValidationError) -> list[str]:
    """One ``error:`` line per invalid setting."""
    lines = []
    for error in exc.errors(include_url=False):
        field = _field_for(str(error["loc"][0])) if error["loc"] else "settings"
        value = error.get("input")
        shown = "<hidden>" if "auth" in field or "token" in field else repr(value)
        lines.append(f"error: invalid setting {setting_label(field)} = {shown}: {_allowed(error)}")
    return lines


def install_command(extra: str) -> str:
    """The command that installs ``extra`` into this very environment, runnable as printed: from a
    clone, the clone's folder pinned by its lock; else the released package."""
    from pi_axera_sd.printed_commands import clone_root

    pip = f"{sys.executable} -m pip install"
    root = clone_root()
    if root is None:
        target = f"'pi-axera-sd[{extra}]'"
    else:
        lock = root / LOCK_FILE
        target = (f"-c {lock} " if lock.is_file() else "") + f"-e '{root}[{extra}]'"
    if extra == "export":  # PyPI's Linux torch is the CUDA build (GBs): take PyTorch's CPU wheels
        return f"{pip} --extra-index-url {TORCH_CPU_INDEX} {target}"
    return f"{pip} {target}"


def missing_extra_line(exc: ModuleNotFoundError) -> str | None:
    """A one-line message for a missing optional dependency, or None when it is not one of ours."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return f"error: this needs the '{extra}' extra (module '{top}' is not installed); install it with: " + (
        install_command(extra)
    )
