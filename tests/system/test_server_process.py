"""The server as a process: SIGTERM stops it gracefully with exit 0, and a runtime that keeps
failing makes it exit non-zero (so systemd restarts it).

The server runs the real app through the real runner (``server.runner.run``, what ``serve``
calls) in a subprocess; a small harness only swaps in a pipeline whose job can be held at a step
(released through stdin) or whose UNet runtime session fails.
"""

from __future__ import annotations

import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from support.server import ServeProcess

WAIT = 30.0

HARNESS = """
import json, os, sys
sys.path.insert(0, {tests_dir!r})
from pi_axera_sd.config import Settings
from pi_axera_sd.engine.pipeline import Pipeline
from pi_axera_sd.server.app import create_app
from pi_axera_sd.server.core.logs import configure_logging
from pi_axera_sd.server.core.runner import run
from pi_axera_sd.wiring import model_layout, runtime_options
from support.server import FailingInner

settings = Settings()
configure_logging("info")
pipeline = Pipeline.load(model_layout(settings), runtime_options(settings))


class StdinGate:
    # Jobs whose prompt starts with "hold" wait at their first step until a byte arrives on stdin.
    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, params, *, noise=None, on_step=None, **hooks):
        def step(done, total):
            on_step(done, total)
            if done == 0 and params.prompt.startswith("hold"):
                print(json.dumps({{"event": "held", "prompt": params.prompt}}), flush=True)
                os.read(0, 1)  # raw fd: no buffered-stdin lock left held at interpreter exit
        return self._inner.generate(params, noise=noise, on_step=step, **hooks)


if sys.argv[1] == "fail":
    pipeline.unet.inner = FailingInner(pipeline.unet.inner)
else:
    pipeline = StdinGate(pipeline)
sys.exit(run(create_app(settings, pipeline=pipeline), settings))
"""


@pytest.fixture
def harness(tmp_path, request):
    script = tmp_path / "harness.py"
    script.write_text(HARNESS.format(tests_dir=str(request.path.parents[1])))
    return script


def _start(harness, mode: str, tiny_model_dir, **env: str) -> ServeProcess:
    base = {"MODELS_DIR": str(tiny_model_dir), "PI_AXERA_SD_CLIP_DIR": "/nonexistent", **env}
    return ServeProcess(base, [sys.executable, str(harness), mode], stdin=True).wait_ready()


def _post(url: str, prompt: str) -> httpx.Response:
    return httpx.post(f"{url}/generate", json={"prompt": prompt, "seed": 5}, timeout=60)


def _wait_job_count(url: str, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/sdapi/v1/progress").json()["state"]["job_count"] == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"job_count never reached {count}")


def _refuses_connections(url: str) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=1)
        except httpx.TransportError:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_finishes_the_running_job_refuses_queued_ones_and_exits_0(harness, tiny_model_dir):
    srv = _start(harness, "hold", tiny_model_dir, PI_AXERA_SD_SHUTDOWN_GRACE_S="20")
    try:
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(_post, srv.url, "hold: the running job")
            srv.out.wait_for(lambda r: r.get("event") == "held", WAIT)
            queued = pool.submit(_post, srv.url, "queued behind it")
            _wait_job_count(srv.url, 2)

            srv.proc.send_signal(signal.SIGTERM)
            refused = queued.result(WAIT)
            assert refused.status_code == 503
            assert refused.json() == {"status": "error", "error": "the service is stopping"}
            assert _refuses_connections(srv.url)  # no new connections once stopping
            assert srv.proc.poll() is None  # still finishing the running job

            srv.proc.stdin.write("go\n")
            srv.proc.stdin.flush()
            finished = running.result(WAIT)
        assert finished.status_code == 200
        assert finished.json()["status"] == "ok"
        assert srv.proc.wait(WAIT) == 0
        srv.log.wait_for(lambda r: r.get("msg") == "stopped" and r.get("clean") is True)
    finally:
        srv.stop()


def test_sigterm_exits_within_the_grace_bound_even_if_the_job_hangs(harness, tiny_model_dir):
    srv = _start(harness, "hold", tiny_model_dir, PI_AXERA_SD_SHUTDOWN_GRACE_S="1")
    try:
        with ThreadPoolExecutor(1) as pool:
            hung = pool.submit(_post, srv.url, "hold forever")
            srv.out.wait_for(lambda r: r.get("event") == "held", WAIT)
            start = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            assert srv.proc.wait(WAIT) == 0
            elapsed = time.monotonic() - start
            abandoned = hung.result(WAIT)
        assert abandoned.status_code == 503
        assert abandoned.json()["error"] == "the service stopped before the request finished"
        # grace (1 s) for connections + what is left of it for the lane + 2 s join, with slack.
        assert elapsed < 8.0
        srv.log.wait_for(lambda r: r.get("msg") == "stopped" and r.get("clean") is False)
    finally:
        srv.stop()


def test_a_runtime_that_keeps_failing_exits_non_zero(harness, tiny_model_dir):
    srv = _start(harness, "fail", tiny_model_dir, PI_AXERA_SD_MAX_RUNTIME_FAILURES="2")
    try:
        first = _post(srv.url, "one")
        assert first.status_code == 500
        assert "npu driver error" in first.json()["error"]
        assert httpx.get(f"{srv.url}/health").status_code == 200  # one failure: still serving
        assert httpx.get(f"{srv.url}/ready").status_code == 200
        second = _post(srv.url, "two")
        assert second.status_code == 500
        assert srv.proc.wait(WAIT) == 3
        fatal = srv.log.wait_for(lambda r: r.get("level") == "CRITICAL")
        assert fatal["exit_code"] == 3 and "2 consecutive runtime failures" in fatal["msg"]
    finally:
        srv.stop()


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_truncated_model_file_is_one_line_that_names_it_and_what_to_run(tiny_model_dir, tmp_path, runtime):
    """Exit 2 (a restart cannot fix a broken file), one CRITICAL line with the file, the runtime's
    reason and the verify command; the traceback only at DEBUG."""
    import json
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    unet = broken / "unet.onnx"
    unet.write_bytes(unet.read_bytes()[: unet.stat().st_size // 2])
    env = {"MODELS_DIR": str(broken), "PI_AXERA_SD_CLIP_DIR": str(tmp_path / "no-clip")}
    proc = ServeProcess({**env, "PI_AXERA_SD_RUNTIME": runtime})
    try:
        assert proc.proc.wait(timeout=120) == 2
    finally:
        proc.stop()
    text = proc.log.text()
    assert "Traceback" not in text, text[-3000:]
    problems = [json.loads(line) for line in text.splitlines() if '"level": "CRITICAL"' in line]
    assert not [line for line in text.splitlines() if '"level": "ERROR"' in line], text[-3000:]
    assert len(problems) == 1, text[-3000:]
    message = problems[0]["msg"]
    assert (
        message.startswith(f"fatal: loading the models failed: {unet}: ")
        and "could not load the model (" in message
    )
    assert message.endswith(
        f"check the folder: {sys.executable.rsplit('/', 1)[0]}/pi-axera-sd models verify {broken}"
    )
