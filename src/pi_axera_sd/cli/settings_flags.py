"""A command-line flag for every setting, so anything the environment can set a flag can override.

Flags are derived from :class:`~pi_axera_sd.config.Settings` (``queue_size`` -> ``--queue-size``,
help naming the environment variable), so a new setting gets its flag without touching this file.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from pi_axera_sd.config import PREFIX, Settings


def env_name(name: str, field: FieldInfo) -> str:
    """The environment variable users are told about: the original service's plain name where there is one."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"{PREFIX}{name.upper()}"


def base_type(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def add_settings_flags(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """Add ``--<field>`` for each setting (or each of ``only``) the parser has no flag for yet
    (default None = not given)."""
    taken = {action.dest for action in parser._actions}
    for name, field in Settings.model_fields.items():
        if name in taken or (only is not None and name not in only):
            continue
        flag = "--" + name.replace("_", "-")
        kind = base_type(field.annotation)
        help_text = f"env {env_name(name, field)}"
        default = field.get_default(call_default_factory=True)
        if default not in (None, []) and not isinstance(default, SecretStr):
            help_text += f" (default {default})"
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=help_text)
        elif get_origin(kind) is list:
            # split by Settings (comma-separated or a JSON list), as the environment variable is
            parser.add_argument(flag, dest=name, type=str, help=help_text + "; comma-separated or JSON")
        elif get_origin(kind) is Literal:
            # validated by Settings, so a bad value gets the same message as in the environment
            choices = ",".join(map(str, get_args(kind)))
            parser.add_argument(flag, dest=name, type=str, metavar=f"{{{choices}}}", help=help_text)
        elif kind in (int, float, str, Path):
            # str: Settings converts and checks it, with the same message as for the variable
            parser.add_argument(flag, dest=name, type=str, help=help_text)
        elif kind is SecretStr:
            parser.add_argument(flag, dest=name, type=str, help=help_text + " (prefer the variable)")
