"""Draining (PI_AXERA_SD_DRAIN_S): on SIGTERM the service reports not ready at once but keeps taking
work for the drain time, so a load balancer moves traffic away before the listener closes."""

from __future__ import annotations

import signal
import time

import httpx

from support.server import ServeProcess


def test_sigterm_reports_not_ready_then_keeps_working_until_the_drain_ends(tiny_model_dir):
    env = {
        "MODELS_DIR": str(tiny_model_dir),
        "PI_AXERA_SD_CLIP_DIR": "/nonexistent",
        "PI_AXERA_SD_DRAIN_S": "4",
    }
    srv = ServeProcess(env).wait_ready()
    try:
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        ready = httpx.get(f"{srv.url}/ready", timeout=5)
        while ready.status_code == 200 and time.monotonic() < deadline:
            ready = httpx.get(f"{srv.url}/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["reason"] == "draining: the service stops soon"
        job = httpx.post(f"{srv.url}/generate", json={"prompt": "still served", "seed": 1}, timeout=60)
        assert job.status_code == 200 and job.json()["status"] == "ok"
        assert srv.proc.wait(30) == 0
        srv.log.wait_for(lambda r: r.get("msg") == "draining: not ready, still taking work", 5)
    finally:
        srv.stop()
