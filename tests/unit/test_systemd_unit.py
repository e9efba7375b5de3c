"""The pi_axera_sd_generator.service unit: rendered for this install, parsed back, and checked by
``systemd-analyze verify`` where systemd is present."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pi_axera_sd.config import Settings
from pi_axera_sd.deploy.systemd import UNIT_NAME, parse_unit, render_unit, unit_for_install


def _settings(tmp_path: Path, **overrides) -> Settings:
    base = {"models_dir": tmp_path / "models", "api_auth": None, "api_token": None}
    return Settings(**{**base, **overrides})


def test_unit_for_this_install(tmp_path, monkeypatch):
    monkeypatch.delenv("PI_AXERA_SD_OPENVINO_CACHE_DIR", raising=False)  # conftest's folder for the run
    settings = _settings(tmp_path, port=5001, queue_size=3, shutdown_grace_s=30, api_token="top-secret")
    unit = unit_for_install(
        settings, user="pi", group="pi", extra_env=["AXCL_LOG_LEVEL=2"], working_directory=tmp_path
    )
    text = render_unit(unit)
    parsed = parse_unit(text)
    service = parsed["Service"]
    exec_start = service["ExecStart"][0].split()
    assert Path(exec_start[0]).is_absolute() and Path(exec_start[0]).exists()
    assert exec_start[-1] == "serve"
    assert service["WorkingDirectory"] == [str(tmp_path)]
    assert service["User"] == ["pi"] and service["Group"] == ["pi"]
    env = dict(v.strip('"').split("=", 1) for v in service["Environment"])
    assert env["MODELS_DIR"] == str(tmp_path / "models")
    assert env["PORT"] == "5001" and env["HOST"] == "127.0.0.1"
    assert env["PI_AXERA_SD_QUEUE_SIZE"] == "3"
    assert env["AXCL_LOG_LEVEL"] == "2"
    assert env["PI_AXERA_SD_EMBEDDING_CACHE_DIR"] == "%S/pi-axera-sd/clip-cache"
    assert env["PI_AXERA_SD_OPENVINO_CACHE_DIR"] == "%S/pi-axera-sd/openvino-cache"
    assert "top-secret" not in text and "PI_AXERA_SD_API_TOKEN" not in env
    assert "PI_AXERA_SD_API_TOKEN is set but not written here" in text
    assert service["EnvironmentFile"] == ["-/etc/pi-axera-sd.env"]
    # restart only on the restartable exit codes (3 runtime, 75 not ready) and crashes by signal
    assert service["Restart"] == ["on-abnormal"]
    assert service["RestartForceExitStatus"] == ["3 75"]
    assert service["RestartPreventExitStatus"] == ["2"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert int(parsed["Unit"]["StartLimitBurst"][0]) >= 1
    assert int(parsed["Unit"]["StartLimitIntervalSec"][0]) > 0
    assert service["KillSignal"] == ["SIGTERM"]
    assert int(service["TimeoutStopSec"][0]) > settings.shutdown_grace_s
    assert service["StateDirectory"] == ["pi-axera-sd"]
    for key, value in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "no"),
    ]:
        assert service[key] == [value], key
    assert service["ReadWritePaths"] == [f"-{tmp_path / 'txt2img_server_output'}"]
    assert parsed["Install"]["WantedBy"] == ["multi-user.target"]
    assert parsed["Unit"]["After"] == ["network-online.target"]


def test_values_are_escaped_for_systemd(tmp_path):
    odd = tmp_path / "my models"
    unit = unit_for_install(
        _settings(tmp_path, models_dir=odd),
        user="pi",
        extra_env=['GREETING=50% "quoted"'],
        working_directory=tmp_path / "work dir",
    )
    text = render_unit(unit)
    assert f'Environment="MODELS_DIR={odd}"' in text
    assert 'Environment="GREETING=50%% \\"quoted\\""' in text
    assert f'WorkingDirectory="{tmp_path / "work dir"}"' in text
    with pytest.raises(ValueError, match="KEY=VALUE"):
        unit_for_install(_settings(tmp_path), extra_env=["no equals sign"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path):
    out = tmp_path / UNIT_NAME
    done = subprocess.run(
        [str(Path(sys.executable).with_name("pi-axera-sd")), "systemd", "--output", str(out),
         "--user", "pi", "--models", str(tmp_path / "models"), "--env", "A=b"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "systemctl enable --now pi_axera_sd_generator.service" in done.stdout
    assert "journalctl -u pi_axera_sd_generator.service -f" in done.stdout
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(out)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in verify.stderr.splitlines() if UNIT_NAME in line]
    assert verify.returncode == 0 and not problems, verify.stderr


def test_systemd_command_writes_to_stdout(tmp_path):
    done = subprocess.run(
        [str(Path(sys.executable).with_name("pi-axera-sd")), "systemd", "-o", "-",
         "--user", "pi", "--port", "5009"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = parse_unit(done.stdout)["Service"]
    assert "PORT=5009" in " ".join(service["Environment"])
    assert service["User"] == ["pi"]
