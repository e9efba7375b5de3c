"""Everything one running service holds: settings, the lane and its models, metrics, host threads,
readiness, and the failure policy that decides when the process should exit."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from pi_axera_sd import exitcodes
from pi_axera_sd.config import Settings
from pi_axera_sd.deploy.notify import notify
from pi_axera_sd.engine.pipeline import Pipeline
from pi_axera_sd.interrogate.protocol import Interrogator
from pi_axera_sd.runtime.faults import NpuNotReady, exit_code_for, fault_kind
from pi_axera_sd.server.core.accelerator import AcceleratorStatus, load_with_retry
from pi_axera_sd.server.core.failures import counts_as_runtime_failure
from pi_axera_sd.server.core.firstrun import FirstRunDownload
from pi_axera_sd.server.core.lane import Lane
from pi_axera_sd.server.core.metrics import Metrics
from pi_axera_sd.server.core.modelinfo import ModelInfo, describe
from pi_axera_sd.server.core.output_folder import OutputFolder
from pi_axera_sd.wiring import model_layout, pipeline_options, runtime_options

log = logging.getLogger(__name__)
T = TypeVar("T")

# Exit codes: see pi_axera_sd.exitcodes (the contract shared with the CLI and the systemd unit).
EXIT_CONFIG = exitcodes.CONFIG
EXIT_RUNTIME = exitcodes.RUNTIME


class FailureTracker:
    """Counts consecutive runtime failures; a success resets the count."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.consecutive = 0
        self.total = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def record(self, error: BaseException | None) -> bool:
        """Record one job outcome; True when this failure reaches the limit."""
        with self._lock:
            if error is None:
                self.consecutive = 0
                return False
            self.consecutive += 1
            self.total += 1
            self.last_error = f"{type(error).__name__}: {error}"
            return self.consecutive >= self.limit


def is_runtime_failure(error: BaseException) -> bool:
    """Caller mistakes, interrupts and refusals say nothing about the accelerator's health."""
    return counts_as_runtime_failure(error)


def _host_threads() -> int:
    return max(2, min(4, os.cpu_count() or 2))


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        pipeline: Pipeline | None = None,
        interrogator: Interrogator | None = None,
        first_run: FirstRunDownload | None = None,
    ) -> None:
        self.settings = settings
        self.first_run = first_run
        self.metrics = Metrics()
        self.output = OutputFolder(settings.output_dir, self.metrics.save_failures)
        self.lane = Lane(settings.queue_size, on_result=self._on_result, name="inference-lane")
        self.host_work_pool = ThreadPoolExecutor(_host_threads(), thread_name_prefix="host")
        self.failures = FailureTracker(settings.max_runtime_failures)
        self.pipeline: Pipeline | None = None
        self.model: ModelInfo | None = None
        self.interrogator: Interrogator | None = None
        self.interrogator_error: str | None = "interrogation model is loading"
        self.exit_code = 0
        self.fatal_reason: str | None = None
        self.stopping = False
        self.draining = False  # SIGTERM with drain_s: /ready says 503, jobs still taken
        self._stop_started = 0.0
        self.started_at = time.time()
        self.accelerator = AcceleratorStatus(device=settings.npu_device)
        self._stop_event = threading.Event()  # ends a wait for the NPU on SIGTERM
        self._started = False
        self._reopened_since_success = False
        self._given_pipeline = pipeline
        self._given_interrogator = interrogator
        self._exit_hook: Callable[[], None] | None = None
        self.metrics.bind(
            queued=lambda: self.lane.status().queued,
            running=lambda: 1 if self.lane.status().running else 0,
            ready=lambda: 1 if self.ready()[0] else 0,
        )

    # ---- lifecycle ---------------------------------------------------------------------------

    def on_exit_request(self, hook: Callable[[], None]) -> None:
        """The server runner's way to be told the process should end (see :meth:`fatal`)."""
        self._exit_hook = hook

    def start(self) -> None:
        if self._started:  # listen_after_load starts the service before uvicorn's lifespan does
            return
        self._started = True
        self.lane.start(init=self._load, on_init_error=self._load_failed)

    def begin_stop(self) -> None:
        """SIGTERM: take no new jobs and release every queued client with a 503 right away."""
        if self.stopping:
            return
        self.stopping = True
        notify("STOPPING=1")
        self._stop_event.set()
        self._stop_started = time.monotonic()
        dropped = self.lane.close("the service is stopping")
        if dropped:
            self.metrics.rejections.labels("stopping").inc(dropped)
        log.info("stopping: no new jobs", extra={"fields": {"queued_jobs_failed": dropped}})

    def stop(self, grace_s: float) -> None:
        """Let the running job finish within what is left of ``grace_s`` since the stop began
        (uvicorn has already waited on open connections), then stop the lane and host threads."""
        self.begin_stop()
        left = grace_s - (time.monotonic() - self._stop_started)
        clean = self.lane.stop(max(0.5, left))
        self.host_work_pool.shutdown(wait=clean, cancel_futures=True)
        log.info("stopped", extra={"fields": {"clean": clean}})

    def fatal(self, code: int, reason: str) -> None:
        """Readiness turns false at once; the process exits with ``code`` after a graceful stop."""
        if self.fatal_reason is None:
            self.fatal_reason = reason
            self.exit_code = code
            log.critical("fatal: %s", reason, extra={"fields": {"exit_code": code}})
        self.lane.close(reason)
        if self._exit_hook is not None:
            self._exit_hook()

    def ready(self) -> tuple[bool, str]:
        if self.fatal_reason is not None:
            return False, self.fatal_reason
        if self.stopping:
            return False, "the service is stopping"
        status = self.lane.status()
        if self.pipeline is None and self.first_run is not None and self.first_run.active:
            return False, self.first_run.status()
        if self.accelerator.state == "waiting":
            return False, f"waiting for the NPU: {self.accelerator.detail}"
        if self.accelerator.state == "reopening":
            return False, "reopening the model sessions after runtime failures"
        if self.pipeline is None or status.state != "open":
            return False, status.reason or "models are loading"
        return True, "ready"

    # ---- host work ---------------------------------------------------------------------------

    async def run_host_work(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run CPU-bound host work (decode, resize, encode) off the event loop and off the lane."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.host_work_pool, partial(fn, *args, **kwargs))

    # ---- the lane's hooks (lane thread) ------------------------------------------------------

    def _load(self) -> None:
        start = time.perf_counter()
        pipeline = self._given_pipeline
        if pipeline is None and self.first_run is not None:
            self.first_run.run()  # an empty model folder on the first start: fetch the default model
        if pipeline is None:
            pipeline = self._open_pipeline()
        self.accelerator.set("ready")
        self.model = describe(pipeline)
        self.pipeline = pipeline
        fields: dict[str, Any] = {
            "model": self.model.name,
            "size": f"{self.model.width}x{self.model.height}",
            "img2img": self.model.img2img,
            "runtimes": {role: f"{s.runtime}/{s.provider}" for role, s in pipeline.sessions.items()},
            "load_ms": round((time.perf_counter() - start) * 1000, 1),
        }
        self._load_interrogator()
        fields["interrogation"] = self.interrogator_error or "loaded"
        log.info("models loaded", extra={"fields": fields})
        notify("READY=1")  # Type=notify: systemd counts the service started from here

    def _open_pipeline(self) -> Pipeline:
        """Resolve the layout and open every session, waiting for an NPU that is not up yet."""
        layout = model_layout(self.settings)
        for warning in layout.warnings:
            log.warning(warning)
        if layout.tokenizer_packaged:
            log.info("no tokenizer in the model folder; using the packaged CLIP tokenizer")
        options = runtime_options(self.settings)

        extra = pipeline_options(self.settings)

        def attempt() -> Pipeline:
            self.accelerator.load_attempts += 1
            return Pipeline.load(layout, options, **extra)

        return load_with_retry(attempt, self.settings.npu_wait_s, self._on_not_ready, self._stop_event)

    def _on_not_ready(self, error: NpuNotReady, attempt: int, pause_s: float) -> None:
        self.accelerator.set("waiting", "not_ready", str(error))
        self.metrics.accelerator_faults.labels("not_ready").inc()
        log.warning(
            "the NPU is not ready; waiting",
            extra={"fields": {"attempt": attempt, "retry_in_s": round(pause_s, 2), "detail": str(error)}},
        )

    def _load_interrogator(self) -> None:
        found = self._given_interrogator
        error = None
        if found is None:
            found, error = load_interrogator_from(self.settings)
        self.interrogator, self.interrogator_error = found, error
        if found is not None:
            self.lane.set_background(found.warmup_step)

    def _load_failed(self, _kind: str, error: BaseException | None) -> None:
        # Unusable model files or a missing install will not fix themselves: exit 2 so systemd
        # does not loop; an NPU still not up after npu_wait_s exits 75 (restartable).
        kind = fault_kind(error)
        self.accelerator.set("failed", kind, str(error))
        if self.stopping:  # SIGTERM ended the wait for the NPU: a clean stop, exit 0
            log.info("loading stopped", extra={"fields": {"detail": str(error)}})
            return
        self.metrics.accelerator_faults.labels(kind).inc()
        self.fatal(exit_code_for(error), f"loading the models failed: {error}")

    def _on_result(self, kind: str, error: BaseException | None) -> None:
        if error is not None and not is_runtime_failure(error):
            return
        if error is not None:
            self.metrics.job_failures.labels(kind, "runtime").inc()
            log.error(
                "job failed in the runtime",
                exc_info=error,
                extra={"fields": {"kind": kind, "consecutive": self.failures.consecutive + 1}},
            )
        if error is None:
            self._reopened_since_success = False
        if self.failures.record(error):
            if self._can_reopen():
                self._reopen()
                return
            self.fatal(
                EXIT_RUNTIME,
                f"{self.failures.consecutive} consecutive runtime failures, last: {self.failures.last_error}",
            )

    def _can_reopen(self) -> bool:
        return (
            self.settings.reopen_sessions
            and self._given_pipeline is None
            and self.pipeline is not None
            and not self._reopened_since_success
        )

    def _reopen(self) -> None:
        """Close and reopen every model session in this process (a driver hiccup should not need
        a restart). Runs on the lane thread, so no job runs meanwhile; queued jobs hold the same
        :class:`Pipeline` object, which takes the new sessions. A second run of failures without
        a success in between ends the process (exit 3)."""
        assert self.pipeline is not None
        reason = self.failures.last_error
        self._reopened_since_success = True
        self.accelerator.reopens += 1
        self.accelerator.set("reopening", "runtime", reason)
        self.metrics.session_reopens.inc()
        log.warning(
            "reopening the model sessions",
            extra={"fields": {"consecutive_failures": self.failures.consecutive, "last": reason}},
        )
        self.pipeline.release_sessions()  # free the device's copies before loading new ones
        try:
            self.pipeline.take_state_of(self._open_pipeline())
        except Exception as exc:
            kind = fault_kind(exc)
            self.accelerator.set("failed", kind, str(exc))
            code = exitcodes.NOT_READY if isinstance(exc, NpuNotReady) else EXIT_RUNTIME
            self.fatal(code, f"reopening the model sessions failed: {exc}")
            return
        self.failures.record(None)
        self.accelerator.set("ready")
        log.info("model sessions reopened")


def load_interrogator_from(settings: Settings) -> tuple[Interrogator | None, str | None]:
    """The CLIP interrogator if its model files are present, else None and the reason."""
    try:
        from pi_axera_sd.interrogate.loading import load_interrogator
    except ImportError as exc:
        return None, f"interrogation is not available in this install ({exc})"
    try:
        found = load_interrogator(settings)
    except Exception as exc:
        log.exception("loading the interrogation model failed")
        return None, f"loading failed: {exc}"
    if found is None:
        where = settings.text_model_dir or settings.models_dir
        return None, f"no CLIP model files under {settings.clip_dir} or {where}"
    return found, None
