"""Many devices behind one address: one service instance per device (systemd template unit
``pi-axera-sd@.service``, one environment file per instance) and HAProxy as the front door.

HAProxy facts this relies on (HAProxy 2.6 configuration manual): ``option httpchk`` with
``http-check send``/``expect`` for health checks, ``maxconn`` on a server line queues the excess in
HAProxy (bounded by ``timeout queue``), ``retry-on`` + ``option redispatch`` resend a request to
another server on a connection failure, an empty answer or a 503, and ``http-error`` shapes the
answers HAProxy generates itself (here: a JSON 503 with Retry-After, like the service's own).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pi_axera_sd.config import Settings
from pi_axera_sd.deploy.systemd import ENV_FILE, UNIT_NAME, Unit, render_unit

TEMPLATE_NAME = "pi-axera-sd@.service"
INSTANCE_ENV_DIR = "/etc/pi-axera-sd"
# The NPU card an instance drives, written to its environment file. The name must match the
# service's device-id setting; it lives only here so that one edit aligns the two.
DEVICE_ID_ENV = "PI_AXERA_SD_NPU_DEVICE"  # read by Settings.npu_device
DRAIN_ENV = "PI_AXERA_SD_DRAIN_S"
DEFAULT_DRAIN_S = 5.0  # > HAProxy's time to mark a server down (inter 1s x fall 2, plus a check)
JOB_PATHS = ("/generate", "/sdapi/v1/txt2img", "/sdapi/v1/img2img")
_NAME = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Backend:
    name: str  # HAProxy server name and systemd instance name
    address: str  # host:port
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # for local instances
    local: bool = True


def parse_device(spec: str, index: int, port: int) -> Backend:
    """``ax:N`` (an AX650N card by device id), ``cuda:N`` or ``cpu`` -> a local instance."""
    kind, _, ident = spec.partition(":")
    address = f"127.0.0.1:{port}"
    if kind == "ax" and ident.isdigit():
        return Backend(f"ax{ident}", address, {"PORT": str(port), DEVICE_ID_ENV: ident})
    if kind == "cuda" and ident.isdigit():
        env = {"PORT": str(port), "PI_AXERA_SD_DEVICE": "cuda", "CUDA_VISIBLE_DEVICES": ident}
        return Backend(f"cuda{ident}", address, env)
    if kind == "cpu" and not ident:
        return Backend(f"cpu{index}", address, {"PORT": str(port), "PI_AXERA_SD_DEVICE": "cpu"})
    raise ValueError(f"--instance wants ax:N, cuda:N or cpu, got {spec!r}")


def parse_server(spec: str) -> Backend:
    """``host:port`` of a service running elsewhere (its own unit on its own host)."""
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--server wants HOST:PORT, got {spec!r}")
    return Backend(_NAME.sub("_", host) + f"_{port}", spec, local=False)


def backends_for(devices: Iterable[str], servers: Iterable[str], base_port: int) -> list[Backend]:
    out = [parse_device(spec, i, base_port + i) for i, spec in enumerate(devices)]
    out += [parse_server(spec) for spec in servers]
    names = [b.name for b in out]
    if not out:
        raise ValueError("give at least one --instance or --server")
    if len(set(names)) != len(names):
        raise ValueError(f"each device or server must appear once: {', '.join(names)}")
    return out


@dataclass(frozen=True)
class ProxyOptions:
    bind: str = "0.0.0.0:5000"
    jobs_per_instance: int = 1
    queue_timeout_s: int = 300
    stats_socket: str = "/run/haproxy/admin.sock"
    stats_bind: str = "127.0.0.1:8404"
    user: str | None = "haproxy"  # HAProxy drops root to this account after binding
    retry_after_s: int = 5


def render_haproxy(backends: list[Backend], opts: ProxyOptions) -> str:
    servers = [f"    server {b.name} {b.address} check" for b in backends]
    tracked = [f"    server {b.name} {b.address} track pi_axera_sd_jobs/{b.name}" for b in backends]
    busy = '{"status":"error","error":"no instance could take the job; retry later"}'
    lines = [
        "# Written by 'pi-axera-sd haproxy'. Check: haproxy -c -f haproxy.cfg",
        "global",
        "    log /dev/log local0",
        "    maxconn 1024",
        f"    stats socket {opts.stats_socket} mode 660 level admin",
        "    stats timeout 30s",
        "    # Requests are retried from HAProxy's buffer: img2img bodies (base64 images) must fit.",
        "    tune.bufsize 1048576",
        *([f"    user {opts.user}", f"    group {opts.user}"] if opts.user else []),
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    timeout connect 3s",
        "    timeout client 15m",
        "    # One job may take minutes on a busy card; the queue wait is bounded separately.",
        "    timeout server 15m",
        f"    timeout queue {opts.queue_timeout_s}s",
        "    timeout http-request 60s",
        "    timeout check 3s",
        "    # A refused job (503), a dead instance (connection refused/reset, empty answer) is",
        "    # sent to another instance: redispatch on every retry.",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response junk-response 503",
        "    # HAProxy's own 503 (queue timeout, every instance down): JSON + Retry-After like the service.",
        f"    http-error status 503 content-type application/json string '{busy}' "
        f"hdr Retry-After {opts.retry_after_s}",
        "",
        "frontend pi_axera_sd",
        f"    bind {opts.bind}",
        "    acl job method POST",
        "    acl job_path path " + " ".join(JOB_PATHS),
        "    acl job_path path_beg /sdapi/v1/interrogate",
        "    # Inference jobs wait in HAProxy's queue; everything else (progress, options, /docs) does not.",
        "    use_backend pi_axera_sd_jobs if job job_path",
        "    default_backend pi_axera_sd_meta",
        "",
        "backend pi_axera_sd_jobs",
        "    balance leastconn",
        "    option httpchk",
        "    http-check send meth GET uri /ready",
        "    http-check expect status 200",
        "    # maxconn: jobs in flight per instance; the rest queue here, not in the service.",
        "    # init-addr: a host name that does not resolve yet does not stop HAProxy from starting.",
        "    # observe/on-error: one refused or broken connection marks an instance down at once (an",
        "    # idle dead instance has the fewest connections: leastconn would keep picking it).",
        f"    default-server inter 1s fall 2 rise 2 maxconn {opts.jobs_per_instance} init-addr libc,none "
        "observe layer4 error-limit 1 on-error mark-down",
        *servers,
        "",
        "backend pi_axera_sd_meta",
        "    balance roundrobin",
        "    default-server init-addr libc,none",
        *tracked,
        "",
        "listen stats",
        f"    bind {opts.stats_bind}",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
        "",
    ]
    return "\n".join(lines)


def render_instance_env(backend: Backend) -> str:
    lines = [
        f"# pi-axera-sd instance {backend.name}: install as {INSTANCE_ENV_DIR}/{backend.name}.env",
        *(f"{k}={v}" for k, v in backend.env.items()),
        "",
    ]
    return "\n".join(lines)


def _replace_line(lines: list[str], start: str, new: list[str]) -> None:
    """Swap the unit writer's line beginning with ``start`` for ``new`` (loud if it moved)."""
    for i, line in enumerate(lines):
        if line.startswith(start):
            lines[i : i + 1] = new
            return
    raise ValueError(f"the systemd unit writer no longer writes a {start!r} line")


def template_unit(unit: Unit, settings: Settings) -> str:
    """``pi-axera-sd@.service`` from the single-instance unit: each instance (``%i``) reads its
    port and device from ``/etc/pi-axera-sd/%i.env`` and drains before it stops."""
    env = {k: v for k, v in unit.environment.items() if k != "PORT"}
    drain = settings.drain_s if settings.drain_s > 0 else DEFAULT_DRAIN_S
    env[DRAIN_ENV] = f"{drain:g}"
    unit = dataclasses.replace(unit, environment=env, stop_timeout_s=unit.stop_timeout_s + math.ceil(drain))
    lines = [line for line in render_unit(unit).splitlines() if not line.startswith("#   ")]
    _replace_line(
        lines,
        "# Written by",
        [
            "# Written by 'pi-axera-sd haproxy'. One instance per device, e.g. ax0:",
            f"#   sudo cp {TEMPLATE_NAME} /etc/systemd/system/ && sudo systemctl daemon-reload",
            f"#   sudo mkdir -p {INSTANCE_ENV_DIR} && sudo cp ax0.env {INSTANCE_ENV_DIR}/",
            "#   sudo systemctl enable --now pi-axera-sd@ax0.service",
        ],
    )
    description = next(line for line in lines if line.startswith("Description="))
    _replace_line(lines, "Description=", [description + " (instance %i)"])
    _replace_line(
        lines,
        f"EnvironmentFile=-{ENV_FILE}",
        [
            f"EnvironmentFile=-{ENV_FILE}",
            "# This instance's PORT and device; read last, so it wins.",
            f"EnvironmentFile={INSTANCE_ENV_DIR}/%i.env",
        ],
    )
    _replace_line(lines, "SyslogIdentifier=", ["SyslogIdentifier=pi-axera-sd@%i"])
    text = "\n".join(lines) + "\n"
    if UNIT_NAME in text:
        raise ValueError(f"{UNIT_NAME} left in the template unit")
    return text
