"""``pi-axera-sd serve`` and ``pi-axera-sd systemd``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pi_axera_sd.cli.settings_flags import add_settings_flags
from pi_axera_sd.wiring import model_layout, runtime_options

log = logging.getLogger(__name__)

MISSING_MODELS_HELP = """\
error: cannot serve: {error}

Point MODELS_DIR or --models at a model folder, or make one, then start again.
A quick smoke test: {demo}
"""


def cmd_serve(args: argparse.Namespace) -> int:
    from pi_axera_sd.cli.common import settings_from_args
    from pi_axera_sd.engine.layout import check_layout, holds_model_files
    from pi_axera_sd.errors import ModelError
    from pi_axera_sd.printed_commands import demo_hint
    from pi_axera_sd.server.app import create_app
    from pi_axera_sd.server.core.firstrun import (
        FirstRunDownload,
        check_first_run,
        default_spec,
        wants_first_run,
    )
    from pi_axera_sd.server.core.logs import configure_logging
    from pi_axera_sd.server.core.preflight import (
        check_models_dir,
        check_port,
        check_runtimes,
        check_variant,
    )
    from pi_axera_sd.server.core.runner import run
    from pi_axera_sd.server.core.service import EXIT_CONFIG

    settings = settings_from_args(args)
    configure_logging("debug" if args.verbose else settings.log_level, settings.log_max_string)
    check_port(settings.host, settings.port)  # before any model loads: a busy port is exit 2 at once
    check_models_dir(settings)
    first_run = None
    try:
        layout = model_layout(settings)
        check_layout(layout)
    except ModelError as exc:
        if wants_first_run(settings):  # an empty model folder: the lane downloads the default model
            check_first_run(settings, default_spec(settings))  # one line and exit, before the server starts
            first_run = FirstRunDownload(settings)
            code = run(create_app(settings, first_run=first_run), settings)
            if first_run.active:  # stopped mid-download: the hub client's threads would hold the exit
                print(
                    "first run: download stopped; the finished files stay in the cache and the next "
                    "start fetches the rest",
                    file=sys.stderr,
                    flush=True,
                )
                sys.stdout.flush()
                os._exit(code)
            return code
        # Exit 2: the unit's RestartPreventExitStatus=2 stops systemd from restarting in a loop.
        log.error(
            "models missing", extra={"fields": {"detail": str(exc), "models_dir": str(settings.models_dir)}}
        )
        # With a model already there, only the exact problem: a random-weights export would overwrite it.
        has_model = holds_model_files(model_layout(settings).root)
        help_text = "error: cannot serve: {error}\n" if has_model else MISSING_MODELS_HELP
        print(help_text.format(error=exc, demo=demo_hint()), file=sys.stderr)
        return EXIT_CONFIG
    check_runtimes(layout, settings)
    check_variant(layout, settings)
    try:
        app = create_app(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    log.info(banner(layout, settings))
    return run(app, settings)


def banner(layout, settings) -> str:
    """One line for humans: where it listens, which model, which runtime."""
    options = runtime_options(settings)
    runtime = settings.runtime if options.runtime == settings.runtime else f"auto -> {options.runtime}"
    name = layout.manifest.get("name") or layout.root.name
    variant = f", variant {settings.variant}" if settings.variant else ""
    return (
        f"pi-axera-sd serving {name} ({layout.root}) on http://{settings.host}:{settings.port} "
        f"(runtime {runtime}{variant}); API docs at /docs"
    )


def cmd_systemd(args: argparse.Namespace) -> int:
    from pi_axera_sd.cli.common import settings_from_args
    from pi_axera_sd.deploy.systemd import UNIT_NAME, render_unit

    settings = settings_from_args(args)
    try:
        unit = unit_from_args(args, settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render_unit(unit)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output or UNIT_NAME)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}. Install and start it with:")
    print(f"  sudo cp {out} /etc/systemd/system/{UNIT_NAME}")
    print("  sudo systemctl daemon-reload")
    print(f"  sudo systemctl enable --now {UNIT_NAME}")
    print(f"  sudo journalctl -u {UNIT_NAME} -f")
    return 0


def unit_from_args(args: argparse.Namespace, settings):
    """The systemd unit for this install from the unit flags shared by ``systemd`` and ``haproxy``."""
    from pi_axera_sd.deploy.systemd import unit_for_install

    return unit_for_install(
        settings,
        user=args.user,
        group=args.group,
        extra_env=args.env or [],
        working_directory=args.working_directory,
        given=_given_settings(args),
    )


def _given_settings(args: argparse.Namespace) -> set[str]:
    from pi_axera_sd.config import Settings

    return {k for k, v in vars(args).items() if k in Settings.model_fields and v is not None}


def register(sub: argparse._SubParsersAction, _models_sub: argparse._SubParsersAction) -> None:
    from pi_axera_sd.cli.common import add_engine_flags

    serve = sub.add_parser(
        "serve",
        help="run the HTTP service (/generate, the A1111 API, /docs)",
        description="Every setting comes from its environment variable; a flag given here overrides it.",
    )
    add_engine_flags(serve)
    add_settings_flags(serve)
    serve.set_defaults(func=cmd_serve)

    unit = sub.add_parser(
        "systemd",
        help="write pi_axera_sd_generator.service for this install",
        description="Writes a systemd unit that runs this install's 'pi-axera-sd serve' with the settings "
        "given here or in the environment. Credentials are never written into the unit: put "
        "PI_AXERA_SD_API_AUTH / PI_AXERA_SD_API_TOKEN in /etc/pi-axera-sd.env (mode 600).",
    )
    unit.add_argument("--user", help="account the service runs as (default: the invoking user)")
    unit.add_argument("--group", help="group (default: the user's primary group)")
    unit.add_argument(
        "--env", action="append", metavar="KEY=VALUE", help="extra Environment= line (repeatable)"
    )
    unit.add_argument("--working-directory", type=Path, help="default: the current directory")
    unit.add_argument(
        "-o", "--output", help="file to write (default ./pi_axera_sd_generator.service; - = stdout)"
    )
    add_engine_flags(unit)
    add_settings_flags(unit)
    unit.set_defaults(func=cmd_systemd)
