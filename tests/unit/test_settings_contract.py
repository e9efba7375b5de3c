"""The configuration contract: every invalid setting, from the environment or a flag, is one line
on stderr naming the setting, the bad value and what is allowed, and exit 2 (never restarted by
systemd); checks that need no model (port, runtimes, variant) run before any model loads.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pi_axera_sd import exitcodes
from pi_axera_sd.config import Settings
from pi_axera_sd.wiring import model_layout

TOOL = str(Path(sys.executable).with_name("pi-axera-sd"))

# (environment, flags, words the one error line must hold)
BAD_SETTINGS = [
    ({"PORT": "abc"}, [], ["PORT / --port", "'abc'", "valid integer"]),
    ({}, ["--port", "70000"], ["PORT / --port", "70000", "less than or equal to 65535"]),
    ({}, ["--vae", "foo"], ["PI_AXERA_SD_VAE / --vae", "'foo'", "'full' or 'tiny'"]),
    ({}, ["--log-level", "verbose"], ["--log-level", "'verbose'", "'debug', 'info', 'warning' or 'error'"]),
    ({"PI_AXERA_SD_RUNTIME": "tpu"}, [], ["PI_AXERA_SD_RUNTIME", "'tpu'", "'openvino'"]),
    ({"PI_AXERA_SD_DEVICE": "gpu"}, [], ["PI_AXERA_SD_DEVICE", "'gpu'", "'cpu' or 'cuda'"]),
    ({"PI_AXERA_SD_QUEUE_SIZE": "0"}, [], ["PI_AXERA_SD_QUEUE_SIZE", "'0'", "greater than or equal to 1"]),
    ({"PI_AXERA_SD_VARIANT": "int4"}, [], ["PI_AXERA_SD_VARIANT", "'int4'", "'int8'"]),
    ({"PI_AXERA_SD_PRECISION": "f64"}, [], ["PI_AXERA_SD_PRECISION", "'f64'", "'bf16'"]),
    ({"PI_AXERA_SD_SAVE_IMAGES": "maybe"}, [], ["PI_AXERA_SD_SAVE_IMAGES", "'maybe'", "valid boolean"]),
    ({"PI_AXERA_SD_THREADS": "-1"}, [], ["PI_AXERA_SD_THREADS", "'-1'", "greater than or equal to 0"]),
    ({"PI_AXERA_SD_DEEP_CACHE": "1"}, [], ["PI_AXERA_SD_DEEP_CACHE", "'1'", "0 (off) or an interval of 2"]),
    ({}, ["--deep-cache", "x"], ["PI_AXERA_SD_DEEP_CACHE / --deep-cache", "'x'", "valid integer"]),
    ({"PI_AXERA_SD_CORS_ORIGINS": '["https://a"'}, [], ["PI_AXERA_SD_CORS_ORIGINS", "https://a"]),
    (
        {"PI_AXERA_SD_SHUTDOWN_GRACE_S": "soon"},
        [],
        ["PI_AXERA_SD_SHUTDOWN_GRACE_S", "'soon'", "valid number"],
    ),
]


def serve(env: dict[str, str], *flags: str, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PI_AXERA_SD_")}
    return subprocess.run(
        [TOOL, "serve", *flags],
        env={**clean, "MODELS_DIR": str(cwd / "no-models"), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == exitcodes.CONFIG, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    ("env", "flags", "words"), BAD_SETTINGS, ids=[str(c[0] or c[1]) for c in BAD_SETTINGS]
)
def test_a_bad_setting_is_one_line_and_exit_2(env, flags, words, tmp_path):
    line = one_error_line(serve(env, *flags, cwd=tmp_path))
    for word in words:
        assert word in line, line


def test_a_busy_port_is_a_config_error_before_models_load(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(serve({"PORT": str(port)}, cwd=tmp_path))
    assert f"PORT / --port = {port}" in line and "in use" in line.lower()


def test_a_missing_extra_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['nncf'] = None; sys.modules['openvino'] = None\n"
        "from pi_axera_sd.cli import main; sys.exit(main(['models', 'quantize', sys.argv[1]]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    line = one_error_line(run)
    assert "'openvino' extra" in line and "pip install" in line and "[openvino]" in line


def test_missing_openvino_for_the_folder_is_a_config_error(tiny_model_dir, tmp_path, monkeypatch):
    from pi_axera_sd.server.core import preflight

    monkeypatch.setattr(preflight.importlib.util, "find_spec", lambda name: None)
    settings = Settings(models_dir=tiny_model_dir, runtime="openvino")
    with pytest.raises(preflight.ConfigError, match="'openvino' extra"):
        preflight.check_runtimes(model_layout(settings), settings)


def test_a_missing_variant_warns_or_fails_when_required(tiny_model_dir, caplog):
    from pi_axera_sd.server.core import preflight

    settings = Settings(models_dir=tiny_model_dir, variant="int8")
    with caplog.at_level(logging.WARNING):
        preflight.check_variant(model_layout(settings), settings)
    assert "no int8 file for unet, vae_decoder" in caplog.text
    strict = Settings(models_dir=tiny_model_dir, variant="int8", require_variant=True)
    with pytest.raises(preflight.ConfigError, match="PI_AXERA_SD_REQUIRE_VARIANT"):
        preflight.check_variant(model_layout(strict), strict)


@pytest.mark.parametrize(
    "value", ["https://a.example,https://b.example", '["https://a.example", "https://b.example"]']
)
def test_list_settings_take_json_or_commas(value, monkeypatch):
    monkeypatch.setenv("PI_AXERA_SD_CORS_ORIGINS", value)
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


def test_auto_prefers_openvino_on_the_cpu_when_installed(monkeypatch):
    from pi_axera_sd.runtime import choice

    monkeypatch.setattr(choice, "openvino_installed", lambda: True)
    assert choice.effective_runtime("auto", "cpu") == "openvino"
    assert choice.effective_runtime("auto", "cuda") == "auto"  # CUDA is ONNX Runtime's
    assert choice.effective_runtime("onnxruntime", "cpu") == "onnxruntime"
    monkeypatch.setattr(choice, "openvino_installed", lambda: False)
    assert choice.effective_runtime("auto", "cpu") == "auto"


def test_journal_lines_carry_the_syslog_priority(tmp_path, monkeypatch):
    from pi_axera_sd.server.core.logs import JsonFormatter, formatter_for

    with open(tmp_path / "journal", "w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        formatter = formatter_for(stream, JsonFormatter())
    error = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, None)
    info = logging.LogRecord("x", logging.INFO, __file__, 1, "fine", None, None)
    assert formatter.format(error).startswith("<3>{")
    assert json.loads(formatter.format(info).removeprefix("<6>"))["msg"] == "fine"


def test_ready_and_stopping_reach_the_notify_socket(tmp_path, monkeypatch):
    from pi_axera_sd.deploy.notify import notify

    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1") and notify("STOPPING=1")
        assert [sock.recv(64), sock.recv(64)] == [b"READY=1", b"STOPPING=1"]
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify("READY=1") is False


@pytest.mark.parametrize(
    "value", ["https://a.example,https://b.example", '["https://a.example", "https://b.example"]']
)
def test_list_flags_take_json_or_commas(value):
    from pi_axera_sd.cli import build_parser, settings_from_args

    args = build_parser().parse_args(["serve", "--cors-origins", value])
    assert settings_from_args(args).cors_origins == ["https://a.example", "https://b.example"]


def test_help_lists_only_commands_that_run():
    from pi_axera_sd.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    expected = {"generate", "models", "serve", "systemd", "interrogate", "loadtest", "haproxy"}
    assert set(sub.choices) == expected
    for name, command_parser in sub.choices.items():
        nested = [a for a in command_parser._actions if a.dest == "models_command"]
        parsers = nested[0].choices.values() if nested else [command_parser]
        for leaf in parsers:
            assert callable(leaf.get_default("func")), name
    assert "bench" not in parser.format_help()


def test_a_terminal_gets_readable_lines(monkeypatch):
    from pi_axera_sd.server.core.logs import ConsoleFormatter, JsonFormatter, formatter_for

    class Tty:
        def isatty(self) -> bool:
            return True

        def fileno(self) -> int:
            raise OSError

    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    formatter = formatter_for(Tty(), JsonFormatter())
    assert isinstance(formatter, ConsoleFormatter)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "models loaded", None, None)
    record.fields = {"model": "tiny"}
    line = formatter.format(record)
    assert "INFO" in line and "models loaded" in line and "model=tiny" in line and not line.startswith("{")
