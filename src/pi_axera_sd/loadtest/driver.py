"""One load-test configuration: ``concurrency`` clients sending requests in a loop to one or more
endpoints until a request budget or a time budget runs out.

Each client keeps one request in flight. A 503 with Retry-After is either honoured (the client
waits that long, then sends the same request again) or not (it moves on to its next request).
A request that gets no HTTP answer at all (connection refused or reset, timeout) is *lost*.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np

from pi_axera_sd.loadtest.dialects import Call, calls
from pi_axera_sd.loadtest.rss import rss_mb


@dataclass(frozen=True)
class Plan:
    urls: list[str]
    concurrency: int
    dialect: str = "generate"
    max_requests: int = 50
    duration_s: float = 60.0
    timeout_s: float = 300.0
    honour_retry_after: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)  # local server processes whose RSS is sampled


@dataclass(frozen=True)
class Sample:
    kind: str
    url: str
    status: int | None  # None: lost (no HTTP answer)
    error: str | None
    start_s: float  # since the run began
    latency_s: float
    images: int
    retry_after: str | None


@dataclass
class Progress:
    done: int = 0
    statuses: Counter = field(default_factory=Counter)
    lost: int = 0
    images: int = 0
    elapsed_s: float = 0.0


@dataclass
class _Budget:
    left: int
    deadline: float

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


def _retry_after_s(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date; the service always sends seconds


async def _send(client: httpx.AsyncClient, url: str, call: Call, t0: float) -> Sample:
    start = time.monotonic()
    try:
        response = await client.post(url + call.path, json=call.body)
    except httpx.HTTPError as exc:  # transport errors and timeouts: no answer
        return Sample(call.kind, url, None, type(exc).__name__, start - t0, time.monotonic() - start, 0, None)
    ok = response.status_code == 200
    return Sample(
        call.kind,
        url,
        response.status_code,
        None,
        start - t0,
        time.monotonic() - start,
        call.images if ok else 0,
        response.headers.get("retry-after"),
    )


async def _client(
    index: int, plan: Plan, client: httpx.AsyncClient, budget: _Budget, out: list[Sample], t0: float
) -> None:
    url = plan.urls[index % len(plan.urls)]
    stream = calls(plan.dialect)
    while budget.take():
        call = next(stream)
        while True:
            sample = await _send(client, url, call, t0)
            out.append(sample)
            wait = _retry_after_s(sample.retry_after) if sample.status == 503 else None
            if not plan.honour_retry_after or wait is None:
                break
            if time.monotonic() + wait >= budget.deadline:
                break
            await asyncio.sleep(wait)


async def run_plan(plan: Plan, on_progress: Callable[[Progress], None] | None = None) -> dict:
    """Run one configuration; its summary (see :func:`summarise`)."""
    samples: list[Sample] = []
    t0 = time.monotonic()
    budget = _Budget(plan.max_requests, t0 + plan.duration_s)
    rss_start = rss_mb(plan.pids)
    rss_peak = dict(rss_start)
    timeout = httpx.Timeout(plan.timeout_s, connect=10.0)
    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=plan.headers) as client:
        tasks = [
            asyncio.create_task(_client(i, plan, client, budget, samples, t0))
            for i in range(plan.concurrency)
        ]
        while not all(task.done() for task in tasks):
            await asyncio.wait(tasks, timeout=1.0)
            for pid, mb in rss_mb(plan.pids).items():
                rss_peak[pid] = max(rss_peak.get(pid, 0.0), mb)
            if on_progress is not None:
                on_progress(_progress(samples, time.monotonic() - t0))
        for task in tasks:
            task.result()  # a bug in a client surfaces here rather than as a silent short run
    summary = summarise(plan, samples)
    summary["rss_mb"] = {
        "start": _total(rss_start),
        "end": _total(rss_mb(plan.pids)),
        "peak": _total(rss_peak),
        "per_instance_end": list(rss_mb(plan.pids).values()),
    }
    return summary


def _total(values: dict[int, float]) -> float | None:
    return round(sum(values.values()), 1) if values else None


def _progress(samples: list[Sample], elapsed: float) -> Progress:
    p = Progress(elapsed_s=elapsed)
    for s in samples:
        p.done += 1
        if s.status is None:
            p.lost += 1
        else:
            p.statuses[s.status] += 1
        p.images += s.images
    return p


def _ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000.0, 1) if values else None


def summarise(plan: Plan, samples: list[Sample]) -> dict:
    """Counts, throughput and latency of one configuration's samples."""
    ok = [s for s in samples if s.status == 200]
    refused = [s for s in samples if s.status == 503]
    lost = [s for s in samples if s.status is None]
    end = max((s.start_s + s.latency_s for s in samples), default=0.0)
    images = sum(s.images for s in ok)
    first = min((s.start_s + s.latency_s for s in ok if s.images), default=None)
    latencies = [s.latency_s for s in ok]
    return {
        "instances": len(plan.urls),
        "concurrency": plan.concurrency,
        "dialect": plan.dialect,
        "retry_after_honoured": plan.honour_retry_after,
        "requests": len(samples),
        "status": {str(k): v for k, v in sorted(Counter(s.status for s in samples if s.status).items())},
        "lost": len(lost),
        "lost_errors": dict(Counter(s.error for s in lost)),
        "503_with_retry_after": sum(1 for s in refused if s.retry_after is not None),
        "503_without_retry_after": sum(1 for s in refused if s.retry_after is None),
        "images": images,
        "elapsed_s": round(end, 2),
        "images_per_s": round(images / end, 4) if end > 0 else 0.0,
        "latency_ms": {"p50": _ms(latencies, 50), "p95": _ms(latencies, 95), "p99": _ms(latencies, 99)},
        "time_to_first_image_s": round(first, 3) if first is not None else None,
        "per_kind": dict(Counter(s.kind for s in ok)),
    }
