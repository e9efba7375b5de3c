"""Proof on loopback: HAProxy (as ``pi-axera-sd haproxy`` configures it) in front of three tiny-model
instances. Under a bounded concurrent load one instance is killed (SIGKILL, mid-job): nothing is
lost, every answer is 200 or 503 with Retry-After, HAProxy marks it down and moves its traffic;
started again, it is marked up and gets traffic again. Then another one is stopped with SIGTERM:
it drains (HAProxy marks it down while it still runs) and exits 0, still with nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from support.haproxy import haproxy_binary, server_stats, wait_status
from support.server import free_port, wait_ready

PI_AXERA_SD = str(Path(sys.executable).with_name("pi-axera-sd"))
CLIENTS = 6
HARD_LIMIT_S = 240.0  # the load never runs longer than this, whatever happens


def _serve(models: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "MODELS_DIR": str(models),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PI_AXERA_SD_CLIP_DIR": "/nonexistent",
        "PI_AXERA_SD_THREADS": "1",  # three instances share two cores
        "PI_AXERA_SD_DRAIN_S": "5",  # as the template unit sets it
    }
    with log.open("a") as out:
        return subprocess.Popen(
            [PI_AXERA_SD, "serve"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


@dataclass
class Load:
    """CLIENTS threads posting /generate through the front door until stopped."""

    url: str
    answers: list[tuple[int, str | None]] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self, n: int) -> None:
        deadline = time.monotonic() + HARD_LIMIT_S
        with httpx.Client(timeout=120) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    r = client.post(f"{self.url}/generate", json={"prompt": f"client {n}", "seed": n})
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.lost.append(type(exc).__name__)
                    continue
                with self.lock:
                    self.answers.append((r.status_code, r.headers.get("retry-after")))

    def count(self) -> int:
        with self.lock:
            return len(self.answers) + len(self.lost)

    def wait_for_more(self, n: int, timeout: float = 60.0) -> None:
        target = self.count() + n
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, f"the load stalled at {self.count()} answers"
            time.sleep(0.1)


@pytest.fixture
def stack(tiny_model_dir, tmp_path) -> Iterator[dict]:
    haproxy = haproxy_binary()
    ports = [free_port() for _ in range(3)]
    front, stats = free_port(), free_port()
    sock = tmp_path / "admin.sock"
    servers = [arg for p in ports for arg in ("--server", f"127.0.0.1:{p}")]
    written = subprocess.run(
        [PI_AXERA_SD, "haproxy", *servers, "--bind", f"127.0.0.1:{front}", "--stats-socket", str(sock),
         "--stats-bind", f"127.0.0.1:{stats}", "--haproxy-user", "", "-o", str(tmp_path / "lb")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    cfg = tmp_path / "lb" / "haproxy.cfg"  # log to HAProxy's stdout (a file here), not syslog
    cfg.write_text(cfg.read_text().replace("log /dev/log local0", "log stdout format raw local0"))
    procs = [_serve(tiny_model_dir, p, tmp_path / f"instance-{p}.log") for p in ports]
    lb = subprocess.Popen(
        [haproxy, "-db", "-f", str(tmp_path / "lb" / "haproxy.cfg")],
        stdout=(tmp_path / "haproxy.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_ready(f"http://127.0.0.1:{port}", proc=proc)
        names = [f"127_0_0_1_{p}" for p in ports]
        for name in names:
            wait_status(sock, "pi_axera_sd_jobs", name, "UP")
        yield {
            "url": f"http://127.0.0.1:{front}",
            "sock": sock,
            "ports": ports,
            "procs": procs,
            "names": names,
        }
    finally:
        for proc in [*procs, lb]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*procs, lb]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_kill_one_instance_under_load_nothing_lost(stack, tiny_model_dir, tmp_path):
    sock, name, port = stack["sock"], stack["names"][1], stack["ports"][1]
    load = Load(stack["url"])
    threads = [threading.Thread(target=load._client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        load.wait_for_more(CLIENTS)
        stack["procs"][1].send_signal(signal.SIGKILL)  # mid-job: every instance has one in flight
        stack["procs"][1].wait(10)
        wait_status(sock, "pi_axera_sd_jobs", name, "DOWN", timeout=15)
        load.wait_for_more(CLIENTS)  # the other two carry the load

        restarted = _serve(tiny_model_dir, port, tmp_path / f"instance-{port}.log")
        stack["procs"][1] = restarted
        wait_ready(f"http://127.0.0.1:{port}", proc=restarted)
        wait_status(sock, "pi_axera_sd_jobs", name, "UP", timeout=30)
        served_before = int(server_stats(sock, "pi_axera_sd_jobs")[name]["stot"])
        deadline = time.monotonic() + 60
        while int(server_stats(sock, "pi_axera_sd_jobs")[name]["stot"]) <= served_before:
            assert time.monotonic() < deadline, "the restarted instance got no traffic"
            time.sleep(0.2)

        stopping = stack["procs"][0]
        stopping.send_signal(signal.SIGTERM)
        wait_status(sock, "pi_axera_sd_jobs", stack["names"][0], "DOWN", timeout=15)
        assert stopping.poll() is None  # marked down by its /ready while it still takes work
        assert stopping.wait(60) == 0
        load.wait_for_more(CLIENTS)
    finally:
        load.stop.set()
        for t in threads:
            t.join(150)
    backend = server_stats(sock, "pi_axera_sd_jobs")["BACKEND"]
    statuses = [status for status, _ in load.answers]
    assert load.lost == []
    assert set(statuses) <= {200, 503}, statuses
    assert all(retry_after for status, retry_after in load.answers if status == 503)
    assert statuses.count(200) >= 4 * CLIENTS
    assert int(backend["wredis"]) >= 1  # the killed instance's work went to another one
    print(f"\nfailover: {len(statuses)} answers {dict((s, statuses.count(s)) for s in set(statuses))}, "
          f"lost {len(load.lost)}, redispatched {backend['wredis']}, retried {backend['wretr']}")  # fmt: skip


def test_scale_benchmark_compares_three_instances_with_one(tiny_model_dir, tmp_path):
    haproxy_binary()
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "haproxy_scale.py"), "--clients", "3", "--duration", "3",
         "--models", str(tiny_model_dir), "--out", str(tmp_path / "scale")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 1 |", "| 3 |"))]
    assert len(rows) == 2 and all(" | 0 | " in row for row in rows)  # lost: 0
    assert "throughput 3 instances / 1 instance: " in done.stdout
