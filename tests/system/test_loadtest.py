"""``pi-axera-sd loadtest``: its counting (lost, statuses, Retry-After), and the command as a user
types it against a served tiny model and against instances it starts itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pi_axera_sd.loadtest.driver import Plan, Sample, run_plan, summarise
from support.server import ServeProcess, free_port

PI_AXERA_SD = str(Path(sys.executable).with_name("pi-axera-sd"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sample(status: int | None, latency: float, *, retry_after: str | None = None) -> Sample:
    error = "ConnectError" if status is None else None
    return Sample("generate", "u", status, error, 0.0, latency, 1 if status == 200 else 0, retry_after)


def test_summary_counts_lost_statuses_and_retry_after():
    samples = [
        *(_sample(200, t) for t in (0.1, 0.2, 0.3, 0.4)),
        _sample(503, 0.01, retry_after="5"),
        _sample(503, 0.01),
        _sample(None, 1.0),
    ]
    s = summarise(Plan(urls=["u"], concurrency=2), samples)
    assert s["status"] == {"200": 4, "503": 2}
    assert s["lost"] == 1 and s["lost_errors"] == {"ConnectError": 1}
    assert s["503_with_retry_after"] == 1 and s["503_without_retry_after"] == 1
    assert s["images"] == 4
    assert s["latency_ms"]["p50"] == 250.0
    assert s["time_to_first_image_s"] == 0.1
    assert s["images_per_s"] == 4.0  # 4 images over the 1 s the last (lost) request took


class _Busy(BaseHTTPRequestHandler):
    """Answers the first ``refusals`` POSTs 503 with Retry-After: 0, then 200."""

    refusals = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            refuse = type(self).refusals > 0
            type(self).refusals -= 1
        self.send_response(503 if refuse else 200)
        if refuse:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@contextmanager
def _busy_server(refusals: int) -> Iterator[str]:
    _Busy.refusals = refusals
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.mark.parametrize("honour", [True, False])
def test_503_with_retry_after_is_resent_only_when_honoured(honour):
    with _busy_server(refusals=3) as url:
        plan = Plan(urls=[url], concurrency=1, max_requests=2, duration_s=30, honour_retry_after=honour)
        s = asyncio.run(run_plan(plan))
    if honour:  # the first request is refused 3 times, then both requests succeed
        assert s["status"] == {"200": 2, "503": 3}
    else:  # each request is sent once: both refused
        assert s["status"] == {"503": 2}
    assert s["503_with_retry_after"] == s["status"]["503"] and s["lost"] == 0


def test_requests_without_an_answer_are_lost():
    plan = Plan(urls=[f"http://127.0.0.1:{free_port()}"], concurrency=2, max_requests=4, timeout_s=5)
    s = asyncio.run(run_plan(plan))
    assert s["lost"] == 4 and s["status"] == {} and s["images"] == 0


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PI_AXERA_SD, "loadtest", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_loadtest_against_a_running_service(tiny_model_dir, tmp_path):
    srv = ServeProcess({"MODELS_DIR": str(tiny_model_dir), "PI_AXERA_SD_CLIP_DIR": "/nonexistent"})
    try:
        srv.wait_ready()
        done = _run(
            "--url", srv.url, "--server-pid", str(srv.proc.pid), "--dialect", "mix",
            "--concurrency", "1,2", "--requests", "5", "--duration", "60", "--out", "out",
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        srv.stop()
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "loadtest.json").read_text())
    results = report["results"]
    assert [r["concurrency"] for r in results] == [1, 2]
    for r in results:
        assert r["lost"] == 0 and r["requests"] == 5
        # No CLIP model here: interrogation answers 503; every generation dialect answers 200.
        assert set(r["status"]) <= {"200", "503"}
        assert r["per_kind"].get("txt2img", 0) >= 2 and r["per_kind"].get("generate", 0) >= 1
        assert r["rss_mb"]["start"] > 0 and r["rss_mb"]["end"] > 0
        assert r["latency_ms"]["p50"] > 0 and r["images_per_s"] > 0
    assert "| 1 | 2 | 5 |" in done.stdout  # the markdown table, one row per configuration
    for chart in ("throughput.png", "latency.png"):
        assert (tmp_path / "out" / chart).read_bytes().startswith(PNG_MAGIC)


def test_loadtest_starts_instances_itself(tiny_model_dir, tmp_path):
    done = _run(
        "--models", str(tiny_model_dir), "--instances", "1,2", "--concurrency", "2",
        "--requests", "4", "--serve-env", "PI_AXERA_SD_CLIP_DIR=/nonexistent", "--no-charts",
        "--out", "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "out" / "loadtest.json").read_text())["results"]
    assert [(r["instances"], r["concurrency"]) for r in results] == [(1, 2), (2, 2)]
    assert all(r["status"] == {"200": 4} and r["lost"] == 0 for r in results)
    assert len(results[1]["rss_mb"]["per_instance_end"]) == 2
    assert not (tmp_path / "out" / "throughput.png").exists()


def test_loadtest_needs_one_target(tmp_path):
    done = _run("--concurrency", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: give --url (running services) or --models (instances started here)"
    ]
    done = _run("--url", "http://127.0.0.1:1", "--instances", "1,2", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --instances and --serve-env need --models (instances started here)"
    ]
    assert not (tmp_path / "loadtest-results").exists()


def test_soak_benchmark_reports_its_figures(tiny_model_dir, tmp_path):
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "soak.py"), "--clients", "6", "--duration", "4",
         "--models", str(tiny_model_dir), "--out", str(tmp_path / "soak")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["clients"] == 6 and report["lost"] == 0
    assert report["responses_by_status"]["200"] > 0
    assert report["p95_ms"] >= report["p50_ms"] > 0
    assert report["rss_mb_end"] > 0 and report["rss_drift_mb"] is not None
