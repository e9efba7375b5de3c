"""``pi-axera-sd haproxy``: the HAProxy configuration (checked by HAProxy itself), the template unit
``pi-axera-sd@.service`` and the per-instance environment files, written as a user types it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pi_axera_sd.deploy.haproxy import DEVICE_ID_ENV, DRAIN_ENV, TEMPLATE_NAME
from pi_axera_sd.deploy.systemd import parse_unit
from support.haproxy import check_config, haproxy_binary
from support.server import free_port

PI_AXERA_SD = str(Path(sys.executable).with_name("pi-axera-sd"))


def _haproxy_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PI_AXERA_SD, "haproxy", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_one_host_two_cards(tmp_path):
    done = _haproxy_cmd(
        "--instance", "ax:0", "--instance", "ax:1", "--models", "/opt/pi-axera-sd/models", "-o", "lb",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sudo systemctl enable --now pi-axera-sd@ax0.service pi-axera-sd@ax1.service" in done.stdout
    out = tmp_path / "lb"
    cfg = (out / "haproxy.cfg").read_text()
    assert "    server ax0 127.0.0.1:5001 check" in cfg and "    server ax1 127.0.0.1:5002 check" in cfg
    assert "http-check send meth GET uri /ready" in cfg
    assert "maxconn 1 " in cfg and "option redispatch 1" in cfg
    assert "retry-on conn-failure empty-response junk-response 503" in cfg
    assert "hdr Retry-After 5" in cfg
    # HAProxy itself accepts it (the stats socket moved where this user may create it).
    local = tmp_path / "check.cfg"
    local.write_text(cfg.replace("/run/haproxy/admin.sock", str(tmp_path / "admin.sock")))
    checked = check_config(local)
    assert checked.returncode == 0, checked.stderr

    assert (out / "ax0.env").read_text().splitlines()[1:] == ["PORT=5001", f"{DEVICE_ID_ENV}=0"]
    assert (out / "ax1.env").read_text().splitlines()[1:] == ["PORT=5002", f"{DEVICE_ID_ENV}=1"]
    unit = parse_unit((out / TEMPLATE_NAME).read_text())
    service = unit["Service"]
    assert service["EnvironmentFile"] == ["-/etc/pi-axera-sd.env", "/etc/pi-axera-sd/%i.env"]
    env = dict(v.strip('"').split("=", 1) for v in service["Environment"])
    assert "PORT" not in env  # each instance's port comes from its own file
    assert env["MODELS_DIR"] == "/opt/pi-axera-sd/models" and env[DRAIN_ENV] == "5"
    assert int(service["TimeoutStopSec"][0]) == 60 + 15 + 5  # grace + margin + drain
    assert service["SyslogIdentifier"] == ["pi-axera-sd@%i"]
    assert unit["Unit"]["Description"][0].endswith("(instance %i)")


def test_several_hosts_and_a_cpu(tmp_path):
    done = _haproxy_cmd(
        "--server", "pi-a.lan:5000", "--server", "10.0.0.7:5000", "--instance", "cpu",
        "--jobs-per-instance", "2", "--bind", "127.0.0.1:8080", "-o", "lb", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cfg = (tmp_path / "lb" / "haproxy.cfg").read_text()
    assert "    server pi-a_lan_5000 pi-a.lan:5000 check" in cfg
    assert "    server 10_0_0_7_5000 10.0.0.7:5000 check" in cfg
    assert "    server cpu0 127.0.0.1:5001 check" in cfg
    assert "maxconn 2 " in cfg and "bind 127.0.0.1:8080" in cfg
    local = tmp_path / "check.cfg"
    local.write_text(cfg.replace("/run/haproxy/admin.sock", str(tmp_path / "admin.sock")))
    checked = check_config(local)  # pi-a.lan need not resolve here
    assert checked.returncode == 0, checked.stderr
    assert (tmp_path / "lb" / "cpu0.env").read_text().splitlines()[1:] == [
        "PORT=5001",
        "PI_AXERA_SD_DEVICE=cpu",
    ]


def test_bad_device_is_a_configuration_error(tmp_path):
    done = _haproxy_cmd("--instance", "npu7", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --instance wants ax:N, cuda:N or cpu, got 'npu7'"
    done = _haproxy_cmd("--instance", "ax:0", "--instance", "ax:0", cwd=tmp_path)
    assert done.returncode == 2 and "each device or server must appear once" in done.stderr
    assert not (tmp_path / "haproxy").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_an_instance_of_the_template(tmp_path):
    done = _haproxy_cmd("--instance", "ax:0", "--models", str(tmp_path / "models"), "-o", "lb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    instance = tmp_path / "pi-axera-sd@ax0.service"
    instance.write_text((tmp_path / "lb" / TEMPLATE_NAME).read_text())
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(instance)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in verify.stderr.splitlines() if "pi-axera-sd@" in line]
    assert verify.returncode == 0 and not problems, verify.stderr


def test_haproxy_refusal_is_json_503_with_retry_after(tmp_path):
    """Every instance down: HAProxy's own answer looks like the service's (JSON, Retry-After)."""
    front = free_port()
    done = _haproxy_cmd(
        "--server", f"127.0.0.1:{free_port()}", "--bind", f"127.0.0.1:{front}",
        "--stats-socket", str(tmp_path / "admin.sock"), "--stats-bind", f"127.0.0.1:{free_port()}",
        "--haproxy-user", "", "--queue-timeout", "2", "-o", "lb", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lb = subprocess.Popen(
        [haproxy_binary(), "-db", "-f", str(tmp_path / "lb" / "haproxy.cfg")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answer = None
        deadline = time.monotonic() + 20
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.post(f"http://127.0.0.1:{front}/generate", json={"prompt": "x"}, timeout=30)
            except httpx.TransportError:
                time.sleep(0.2)  # HAProxy still starting
        assert answer is not None and answer.status_code == 503
        assert answer.headers["retry-after"] == "5"
        assert answer.json() == {"status": "error", "error": "no instance could take the job; retry later"}
    finally:
        lb.terminate()
        lb.wait(10)
