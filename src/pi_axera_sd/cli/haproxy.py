"""``pi-axera-sd haproxy``: the HAProxy front door and one systemd instance per device."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pi_axera_sd import exitcodes


def cmd_haproxy(args: argparse.Namespace) -> int:
    from pi_axera_sd.cli.common import settings_from_args
    from pi_axera_sd.cli.serve import unit_from_args
    from pi_axera_sd.deploy.haproxy import (
        INSTANCE_ENV_DIR,
        TEMPLATE_NAME,
        ProxyOptions,
        backends_for,
        render_haproxy,
        render_instance_env,
        template_unit,
    )

    try:
        backends = backends_for(args.instances or [], args.server or [], args.base_port)
        opts = ProxyOptions(
            bind=args.bind,
            jobs_per_instance=args.jobs_per_instance,
            queue_timeout_s=args.queue_timeout,
            stats_socket=args.stats_socket,
            stats_bind=args.stats_bind,
            user=args.haproxy_user or None,
        )
        local = [b for b in backends if b.local]
        unit_text = None
        if local:
            settings = settings_from_args(args)
            unit = unit_from_args(args, settings)
            unit_text = template_unit(unit, settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.CONFIG
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "haproxy.cfg"]
    written[0].write_text(render_haproxy(backends, opts))
    if unit_text is not None:
        (out / TEMPLATE_NAME).write_text(unit_text)
        written.append(out / TEMPLATE_NAME)
        for backend in local:
            path = out / f"{backend.name}.env"
            path.write_text(render_instance_env(backend))
            written.append(path)
    print("wrote " + ", ".join(str(p) for p in written))
    print("install (on this host):")
    print(f"  sudo cp {out / 'haproxy.cfg'} /etc/haproxy/haproxy.cfg && sudo systemctl restart haproxy")
    if local:
        names = " ".join(f"pi-axera-sd@{b.name}.service" for b in local)
        print(f"  sudo cp {out / TEMPLATE_NAME} /etc/systemd/system/ && sudo systemctl daemon-reload")
        print(f"  sudo mkdir -p {INSTANCE_ENV_DIR} && sudo cp {out}/*.env {INSTANCE_ENV_DIR}/")
        print(f"  sudo systemctl enable --now {names}")
    return exitcodes.OK


def register(sub: argparse._SubParsersAction, _models_sub: argparse._SubParsersAction) -> None:
    from pi_axera_sd.cli.common import add_engine_flags
    from pi_axera_sd.cli.settings_flags import add_settings_flags

    p = sub.add_parser(
        "haproxy",
        help="write haproxy.cfg and one systemd instance per device (many devices, one address)",
        description="One service instance per device (--instance ax:0, ax:1, cuda:0, cpu), each on its own "
        "port as pi-axera-sd@NAME.service, and/or services on other hosts (--server host:port), behind "
        "HAProxy: health checks on /ready, --jobs-per-instance jobs in flight per instance with HAProxy "
        "queueing the rest, retries on another instance when one answers 503 or dies.",
    )
    p.add_argument(
        "--instance",
        dest="instances",
        action="append",
        metavar="DEVICE",
        help="ax:N | cuda:N | cpu: a local instance on that device (repeat)",
    )
    p.add_argument("--server", action="append", help="HOST:PORT of a service on another host (repeat)")
    p.add_argument("--base-port", type=int, default=5001, help="port of the first local instance")
    p.add_argument("--bind", default="0.0.0.0:5000", help="HAProxy's address for clients")
    p.add_argument("--jobs-per-instance", type=int, default=1, help="HAProxy maxconn per instance")
    p.add_argument("--queue-timeout", type=int, default=300, help="seconds a job may wait in HAProxy")
    p.add_argument("--stats-socket", default="/run/haproxy/admin.sock")
    p.add_argument("--stats-bind", default="127.0.0.1:8404", help="HAProxy stats page")
    p.add_argument("--haproxy-user", default="haproxy", help="account HAProxy drops to ('' = stay)")
    p.add_argument("--user", help="account the instances run as (default: the invoking user)")
    p.add_argument("--group", help="group of the instances (default: the user's primary group)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="extra Environment= line")
    p.add_argument("--working-directory", type=Path, help="default: the current directory")
    p.add_argument("-o", "--output", type=Path, default=Path("haproxy"), help="folder to write into")
    add_engine_flags(p)
    add_settings_flags(p)
    p.set_defaults(func=cmd_haproxy)
