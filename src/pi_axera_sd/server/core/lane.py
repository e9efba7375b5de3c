"""The inference lane: one thread owns the accelerator and runs one job at a time.

The AX650N runs one model at a time (the original service measured no throughput gain from parallel
instances, and a fourth one breaks the driver), so every use of it goes through here:

* jobs wait in a bounded FIFO per kind ("generate", "interrogate"); the kinds take turns so a burst
  of one never starves the other; a full queue is refused at once (:class:`QueueFull`);
* a job that has not started can be withdrawn (its client went away);
* a running job sees interrupt/skip at its next step boundary through :class:`JobContext`;
* when nothing waits, an optional background step runs (building the CLIP taxonomy embeddings),
  one bounded piece at a time, so a waiting job is delayed by at most one piece.

The lane thread is also the one that loads the models (``init``), so runtimes that bind a device
context to a thread see one thread only.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from pi_axera_sd.errors import Cancelled, PiAxeraError

log = logging.getLogger(__name__)

KINDS = ("generate", "interrogate")
_EMA = 0.3  # weight of the newest job in the running mean of job durations


class LaneUnavailable(Exception):
    """The lane takes no job now (loading, stopped, or failed). HTTP 503."""

    def __init__(self, reason: str, retry_after: int = 5) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class QueueFull(LaneUnavailable):
    """Every waiting slot is taken. HTTP 503 with Retry-After."""


@dataclass
class Job:
    id: str
    kind: str
    fn: Callable[[JobContext], Any]
    label: str = ""
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None

    @property
    def wait_s(self) -> float:
        """Seconds spent queued (so far, if still waiting)."""
        end = self.started if self.started is not None else time.monotonic()
        return end - self.enqueued


@dataclass(frozen=True)
class RunningState:
    job_id: str
    kind: str
    label: str
    started_wall: float
    elapsed_s: float
    image_index: int
    image_count: int
    step: int
    steps: int
    interrupted: bool
    skipped: bool

    @property
    def progress(self) -> float:
        per_image = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.image_index + per_image) / max(1, self.image_count))


@dataclass(frozen=True)
class LaneStatus:
    state: str  # "starting" | "open" | "closed"
    reason: str | None
    queued: int
    running: RunningState | None
    mean_job_s: float | None
    background: bool

    @property
    def job_count(self) -> int:
        return self.queued + (1 if self.running else 0)


class JobContext:
    """What a running job sees: progress reporting and the interrupt/skip checks."""

    def __init__(self, lane: Lane, job: Job) -> None:
        self._lane = lane
        self.job = job
        self.started_wall = time.time()
        self.image_index = 0
        self.image_count = 1
        self.step = 0
        self.steps = 0
        self.interrupted = False
        self.skip_requested = False

    def begin_image(self, index: int, count: int) -> None:
        with self._lane._cond:
            self.image_index, self.image_count = index, count
            self.step, self.steps = 0, 0
            self.skip_requested = False  # a skip applies to the image that was running
            self._lane._cond.notify_all()

    def on_step(self, done: int, total: int) -> None:
        """The pipeline's step callback. Raises :class:`Cancelled` before a step when asked to stop;
        after the last step (done == total) the image is only decoded, so it is let finish."""
        with self._lane._cond:
            self.step, self.steps = done, total
            self._lane._cond.notify_all()
            if done < total and (self.interrupted or self.skip_requested):
                raise Cancelled("interrupted" if self.interrupted else "skipped")

    def snapshot(self) -> RunningState:
        started = self.job.started or time.monotonic()
        return RunningState(
            job_id=self.job.id,
            kind=self.job.kind,
            label=self.job.label,
            started_wall=self.started_wall,
            elapsed_s=time.monotonic() - started,
            image_index=self.image_index,
            image_count=self.image_count,
            step=self.step,
            steps=self.steps,
            interrupted=self.interrupted,
            skipped=self.skip_requested,
        )


ResultHook = Callable[[str, BaseException | None], None]


class Lane:
    def __init__(self, capacity: int, *, on_result: ResultHook | None = None, name: str = "lane") -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.name = name
        self._on_result = on_result
        self._cond = threading.Condition()
        self._queues: dict[str, deque[Job]] = {kind: deque() for kind in KINDS}
        self._turn = 0  # index into KINDS of the kind served next when several wait
        self._state = "starting"
        self._reason: str | None = "models are loading"
        self._running: JobContext | None = None
        self._background: Callable[[], bool] | None = None
        self._mean_job_s: float | None = None
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self, init: Callable[[], None] | None = None, on_init_error: ResultHook | None = None) -> None:
        """Start the lane thread; it runs ``init`` (model loading) first and opens when it succeeds."""
        self._thread = threading.Thread(
            target=self._worker, args=(init, on_init_error), name=self.name, daemon=True
        )
        self._thread.start()

    def close(self, reason: str) -> int:
        """Take no more jobs and fail every queued one with :class:`LaneUnavailable`. The running
        job (if any) finishes. Returns how many queued jobs were failed."""
        with self._cond:
            self._state = "closed"
            self._reason = reason
            pending = [job for queue in self._queues.values() for job in queue]
            for queue in self._queues.values():
                queue.clear()
            self._background = None
            self._cond.notify_all()
        for job in pending:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(LaneUnavailable(reason))
        return len(pending)

    def stop(self, grace_s: float, reason: str = "the service is stopping") -> bool:
        """Close, let the running job finish within ``grace_s``, else interrupt it at its next step.
        Returns True when the lane thread ended."""
        self.close(reason)
        with self._cond:
            finished = self._cond.wait_for(lambda: self._running is None, timeout=grace_s)
            if not finished and self._running is not None:
                log.warning("running job outlived the shutdown grace period; interrupting it")
                self._running.interrupted = True
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            return not self._thread.is_alive()
        return True

    def set_background(self, step: Callable[[], bool] | None) -> None:
        """Low-priority work: ``step()`` runs while no job waits, until it returns False."""
        with self._cond:
            self._background = step if self._state != "closed" else None
            self._cond.notify_all()

    # ---- jobs --------------------------------------------------------------------------------

    def submit(self, kind: str, fn: Callable[[JobContext], Any], label: str = "") -> Job:
        if kind not in self._queues:
            raise ValueError(f"unknown job kind {kind!r}")
        with self._cond:
            self._check_room_locked()
            job = Job(id=f"{kind[:3]}-{next(self._ids)}", kind=kind, fn=fn, label=label)
            self._queues[kind].append(job)
            self._cond.notify_all()
            return job

    def ensure_room(self) -> None:
        """Raise now what :meth:`submit` would raise, before a caller spends time preparing a job."""
        with self._cond:
            self._check_room_locked()

    def _check_room_locked(self) -> None:
        if self._state != "open":
            raise LaneUnavailable(self._reason or "not ready", self._retry_after_locked())
        if self._queued_locked() >= self.capacity:
            raise QueueFull(
                f"the queue is full ({self.capacity} jobs waiting); try again later",
                self._retry_after_locked(),
            )

    def withdraw(self, job: Job) -> bool:
        """Remove a job that has not started. False if it already runs or ran."""
        with self._cond:
            queue = self._queues[job.kind]
            if job not in queue:
                return False
            queue.remove(job)
            job.future.cancel()
            self._cond.notify_all()
            return True

    def interrupt(self) -> bool:
        """Stop the running job at its next step boundary. False when nothing runs."""
        with self._cond:
            if self._running is None:
                return False
            self._running.interrupted = True
            return True

    def skip(self) -> bool:
        """Stop the running job's current image; a batch goes on with its next image."""
        with self._cond:
            if self._running is None:
                return False
            self._running.skip_requested = True
            return True

    # ---- observation ---------------------------------------------------------------------------

    def status(self) -> LaneStatus:
        with self._cond:
            return self._status_locked()

    def wait_until(self, predicate: Callable[[LaneStatus], bool], timeout: float) -> bool:
        """Block until ``predicate(status)`` holds (re-checked on every lane event) or time runs out."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._status_locked()), timeout=timeout)

    def retry_after(self) -> int:
        with self._cond:
            return self._retry_after_locked()

    def _status_locked(self) -> LaneStatus:
        return LaneStatus(
            state=self._state,
            reason=self._reason,
            queued=self._queued_locked(),
            running=self._running.snapshot() if self._running else None,
            mean_job_s=self._mean_job_s,
            background=self._background is not None,
        )

    def _queued_locked(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _retry_after_locked(self) -> int:
        """Seconds until a slot is likely free: the jobs ahead times the mean job time."""
        per_job = self._mean_job_s if self._mean_job_s is not None else 5.0
        ahead = self._queued_locked() + (1 if self._running else 0)
        return max(1, math.ceil(per_job * max(1, ahead)))

    # ---- the thread ----------------------------------------------------------------------------

    def _worker(self, init: Callable[[], None] | None, on_init_error: ResultHook | None) -> None:
        if init is not None:
            try:
                init()
            except Exception as exc:
                # A failure we raise on purpose carries its own one-line message, which the fatal
                # line reports; its traceback is for -v. Anything else is a bug: its traceback is shown.
                expected = isinstance(exc, PiAxeraError)
                log.log(logging.DEBUG if expected else logging.ERROR, "loading failed", exc_info=True)
                self.close(f"loading failed: {exc}")
                if on_init_error is not None:
                    on_init_error("init", exc)
                return
        with self._cond:
            if self._state == "starting":
                self._state, self._reason = "open", None
            self._cond.notify_all()
        while True:
            context: JobContext | None = None
            with self._cond:
                self._cond.wait_for(
                    lambda: self._state == "closed" or self._queued_locked() or self._background is not None
                )
                if self._state == "closed" and not self._queued_locked():
                    return
                job = self._pop_next_locked()
                background = self._background if job is None else None
                if job is not None:
                    job.started = time.monotonic()
                    self._running = JobContext(self, job)
                    context = self._running
            if job is not None and context is not None:
                self._execute(job, context)
            elif background is not None:
                self._run_background(background)

    def _pop_next_locked(self) -> Job | None:
        for offset in range(len(KINDS)):
            kind = KINDS[(self._turn + offset) % len(KINDS)]
            if self._queues[kind]:
                self._turn = (KINDS.index(kind) + 1) % len(KINDS)
                return self._queues[kind].popleft()
        return None

    def _execute(self, job: Job, context: JobContext) -> None:
        if not job.future.set_running_or_notify_cancel():
            with self._cond:
                self._running = None
                self._cond.notify_all()
            return
        result: Any = None
        error: BaseException | None = None
        try:
            result = job.fn(context)
        except Exception as exc:
            error = exc
        job.finished = time.monotonic()
        duration = job.finished - (job.started or job.finished)
        if self._on_result is not None:
            # Before the client hears back, so readiness already reflects a fatal failure.
            try:
                self._on_result(job.kind, error)
            except Exception:
                log.exception("result hook failed")
        with self._cond:
            self._running = None
            if error is None:
                prev = self._mean_job_s
                self._mean_job_s = duration if prev is None else (1 - _EMA) * prev + _EMA * duration
            self._cond.notify_all()
        if error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)

    def _run_background(self, step: Callable[[], bool]) -> None:
        try:
            more = bool(step())
        except Exception:
            log.exception("background work failed; not retrying")
            more = False
        if not more:
            with self._cond:
                if self._background is step:
                    self._background = None
                self._cond.notify_all()
