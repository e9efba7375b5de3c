"""What every sub-command shares: the one-line usage error, the engine flags, and the settings
they build (flags over the environment, checked by :class:`~pi_axera_sd.config.Settings`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, NoReturn

from pi_axera_sd.cli.settings_flags import add_settings_flags

ENGINE_SETTINGS = ("runtime", "device", "threads", "ax_provider", "deep_cache")


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line (the setting contract), not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    """Flags that override the environment's model/runtime settings (see pi_axera_sd.config),
    derived from Settings like every other settings flag. Values are checked by Settings, so a bad
    one gets the same message as in the environment."""
    p.add_argument(
        "--models", dest="models_dir", type=Path, help="model folder (env MODELS_DIR, default ./models)"
    )
    add_settings_flags(p, only=ENGINE_SETTINGS)


def settings_from_args(args: argparse.Namespace, **extra):
    """Environment settings with every flag the user gave taking precedence.

    A bad value raises pydantic's ``ValidationError``; :func:`main` prints it as one line per
    setting (variable and flag named) and exits 2.
    """
    from pi_axera_sd.config import Settings

    fields = Settings.model_fields
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    given.update({k: v for k, v in extra.items() if v is not None})
    return Settings(**given)


def print_export(manifest: dict[str, Any], out: Path) -> None:
    """What an exporter wrote: its manifest without the file list, then how many files and where."""
    print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=2))
    print(f"wrote {len(manifest['files'])} files to {out}")
