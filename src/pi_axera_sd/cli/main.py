"""The pi-axera-sd command: serve, generate, models (export, pull, verify...), interrogate, systemd."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from pi_axera_sd import __version__
from pi_axera_sd.cli import generate
from pi_axera_sd.cli import models as model_tools
from pi_axera_sd.cli.common import OneLineParser
from pi_axera_sd.errors import PiAxeraError


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pi-axera-sd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pi-axera-sd {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    generate.register(sub)
    models = sub.add_parser("models", help="export, pull and check model folders")
    msub = models.add_subparsers(dest="models_command", required=True)
    model_tools.register_tools(msub)

    for register in _sub_command_registrars():
        register(sub, msub)
    return parser


def _sub_command_registrars() -> list[Callable]:
    """The other sub-commands, each in the module named after it (registered in this order)."""
    from pi_axera_sd.cli.haproxy import register as haproxy
    from pi_axera_sd.cli.interrogate import register as interrogation
    from pi_axera_sd.cli.loadtest import register as loadtest
    from pi_axera_sd.cli.models import register as model_hub
    from pi_axera_sd.cli.serve import register as server

    return [server, interrogation, model_hub, loadtest, haproxy]


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from pi_axera_sd import exitcodes
    from pi_axera_sd.settings_errors import missing_extra_line, validation_lines

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:  # a setting from the environment or a flag
        print("\n".join(validation_lines(exc)), file=sys.stderr)
        return exitcodes.CONFIG
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return exitcodes.CONFIG
    except ModuleNotFoundError as exc:  # an optional extra that is not installed
        line = missing_extra_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return exitcodes.CONFIG
    except PiAxeraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", exitcodes.CONFIG))  # e.g. 75 for an NPU that is not up yet


if __name__ == "__main__":
    raise SystemExit(main())
