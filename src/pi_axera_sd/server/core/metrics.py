"""Prometheus metrics, in a registry of their own per app (tests build several apps per process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pi_axera_sd.engine.pipeline import StageTimings

# Seconds; spans the tiny test model (milliseconds) to a 512x512 NPU job (about 3 s) and slow queues.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pi_axera_sd_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "pi_axera_sd_http_request_duration_seconds",
            "Request latency by route",
            ["route"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "pi_axera_sd_stage_duration_seconds",
            "Latency of each stage: queue_wait, host_decode, text_encoder, vae_encoder, unet_step, "
            "vae_decoder, inference, host_encode, interrogate",
            ["stage"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.images = Counter("pi_axera_sd_images", "Images generated", ["mode"], registry=r)
        self.job_failures = Counter(
            "pi_axera_sd_job_failures", "Jobs that failed, by kind and reason", ["kind", "reason"], registry=r
        )
        self.rejections = Counter(
            "pi_axera_sd_rejected_jobs", "Jobs refused or dropped before running", ["reason"], registry=r
        )
        self.queue_depth = Gauge("pi_axera_sd_queue_depth", "Jobs waiting for the inference lane", registry=r)
        self.running = Gauge("pi_axera_sd_jobs_running", "Jobs on the inference lane (0 or 1)", registry=r)
        self.ready = Gauge("pi_axera_sd_ready", "1 when models are loaded and jobs are taken", registry=r)
        self.accelerator_faults = Counter(
            "pi_axera_sd_accelerator_faults",
            "NPU/runtime faults by kind: not_ready (each wait while the driver comes up), "
            "wheel_missing, driver_missing, model_incompatible, model, runtime",
            ["fault"],
            registry=r,
        )
        self.save_failures = Counter(
            "pi_axera_sd_save_failures",
            "Image copies not written to OUTPUT_DIR (full, read-only or missing); the images were answered",
            registry=r,
        )
        self.session_reopens = Counter(
            "pi_axera_sd_session_reopens",
            "Times the model sessions were reopened in-process after repeated runtime failures",
            registry=r,
        )

    def bind(
        self, queued: Callable[[], float], running: Callable[[], float], ready: Callable[[], float]
    ) -> None:
        """Gauges read live values at scrape time instead of being kept in step by hand."""
        self.queue_depth.set_function(queued)
        self.running.set_function(running)
        self.ready.set_function(ready)

    def observe_stage(self, stage: str, ms: float) -> None:
        self.stage_seconds.labels(stage).observe(ms / 1000.0)

    def observe_generation(self, mode: str, timings: StageTimings) -> None:
        self.images.labels(mode).inc()
        self.observe_stage("text_encoder", timings.text_ms)
        if timings.vae_encode_ms:
            self.observe_stage("vae_encoder", timings.vae_encode_ms)
        for ms in timings.unet_ms:
            self.observe_stage("unet_step", ms)
        self.observe_stage("vae_decoder", timings.vae_decode_ms)
        self.observe_stage("inference", timings.total_ms)

    def render(self) -> bytes:
        return generate_latest(self.registry)
