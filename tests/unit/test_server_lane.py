"""The inference lane on its own: ordering, backpressure, withdrawal, interrupt/skip, background
work, closing and the result hook. Jobs here are plain functions; no model is involved."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from pi_axera_sd.errors import Cancelled
from pi_axera_sd.server.core.lane import Lane, LaneUnavailable, QueueFull

WAIT = 10.0


@pytest.fixture
def lane():
    lane = Lane(capacity=6)
    lane.start()
    assert lane.wait_until(lambda s: s.state == "open", WAIT)
    yield lane
    lane.stop(grace_s=1.0)


def _blocker(lane: Lane) -> tuple[threading.Event, threading.Event]:
    """Occupy the lane until the returned ``release`` event is set."""
    running, release = threading.Event(), threading.Event()

    def job(_ctx):
        running.set()
        assert release.wait(WAIT)

    lane.submit("generate", job)
    assert running.wait(WAIT)
    return running, release


def test_kinds_take_turns_and_each_kind_is_fifo(lane):
    order: list[str] = []
    _, release = _blocker(lane)
    plan = [("generate", "g1"), ("generate", "g2"), ("generate", "g3")]
    plan += [("interrogate", "i1"), ("interrogate", "i2")]
    jobs = [lane.submit(kind, lambda _c, n=name: order.append(n)) for kind, name in plan]
    release.set()
    for job in jobs:
        job.future.result(WAIT)
    assert [n for n in order if n.startswith("g")] == ["g1", "g2", "g3"]
    assert [n for n in order if n.startswith("i")] == ["i1", "i2"]
    # After a generate job the interrogate queue is served next, then they alternate.
    assert order == ["i1", "g1", "i2", "g2", "g3"]


def test_full_queue_is_refused_at_once_and_the_running_job_does_not_count(lane):
    _, release = _blocker(lane)
    waiting = [lane.submit("generate", lambda _c, i=i: i) for i in range(lane.capacity)]
    with pytest.raises(QueueFull) as refused:
        lane.submit("interrogate", lambda _c: None)
    assert refused.value.retry_after >= 1
    with pytest.raises(QueueFull):
        lane.ensure_room()
    release.set()
    assert [job.future.result(WAIT) for job in waiting] == list(range(lane.capacity))
    lane.ensure_room()  # room again


def test_a_withdrawn_job_never_runs(lane):
    ran: list[str] = []
    _, release = _blocker(lane)
    gone = lane.submit("generate", lambda _c: ran.append("gone"))
    kept = lane.submit("generate", lambda _c: ran.append("kept"))
    assert lane.withdraw(gone)
    assert lane.status().queued == 1
    release.set()
    kept.future.result(WAIT)
    assert ran == ["kept"]
    with pytest.raises(CancelledError):
        gone.future.result(0)
    assert not lane.withdraw(kept)  # already ran


def test_interrupt_stops_at_the_next_step_boundary(lane):
    at_step = threading.Event()
    proceed = threading.Event()
    steps: list[int] = []

    def job(ctx):
        ctx.begin_image(0, 1)
        for i in range(4):
            ctx.on_step(i, 4)
            steps.append(i)
            if i == 0:
                at_step.set()
                assert proceed.wait(WAIT)
        return "finished"

    submitted = lane.submit("generate", job)
    assert at_step.wait(WAIT)
    assert lane.status().running.progress == pytest.approx(0.0)
    assert lane.interrupt()
    proceed.set()
    with pytest.raises(Cancelled):
        submitted.future.result(WAIT)
    assert steps == [0]
    assert not lane.interrupt()  # nothing runs any more


def test_skip_applies_to_the_current_image_only(lane):
    at_step = threading.Event()
    proceed = threading.Event()
    finished: list[int] = []

    def job(ctx):
        for image in range(3):
            ctx.begin_image(image, 3)
            try:
                for step in range(2):
                    ctx.on_step(step, 2)
                    if image == 1 and step == 0:
                        at_step.set()
                        assert proceed.wait(WAIT)
                ctx.on_step(2, 2)
            except Cancelled:
                continue
            finished.append(image)
        return finished

    submitted = lane.submit("generate", job)
    assert at_step.wait(WAIT)
    running = lane.status().running
    assert (running.image_index, running.image_count, running.step, running.steps) == (1, 3, 0, 2)
    assert running.progress == pytest.approx(1 / 3)
    assert lane.skip()
    proceed.set()
    assert submitted.future.result(WAIT) == [0, 2]


def test_background_work_runs_only_while_no_job_waits():
    lane = Lane(capacity=2)
    order: list[str] = []
    first_step_entered, release_first = threading.Event(), threading.Event()
    calls = 0

    def background() -> bool:
        nonlocal calls
        calls += 1
        order.append(f"bg{calls}")
        if calls == 1:
            first_step_entered.set()
            assert release_first.wait(WAIT)
        return calls < 3

    lane.set_background(background)
    lane.start()
    assert first_step_entered.wait(WAIT)
    job = lane.submit("interrogate", lambda _c: order.append("job"))
    release_first.set()
    job.future.result(WAIT)
    assert lane.wait_until(lambda s: not s.background, WAIT)
    assert order == ["bg1", "job", "bg2", "bg3"]
    lane.stop(1.0)


def test_close_fails_queued_jobs_and_refuses_new_ones(lane):
    _, release = _blocker(lane)
    queued = lane.submit("generate", lambda _c: "never")
    assert lane.close("stopping for the test") == 1
    with pytest.raises(LaneUnavailable, match="stopping for the test"):
        queued.future.result(WAIT)
    with pytest.raises(LaneUnavailable):
        lane.submit("generate", lambda _c: None)
    release.set()


def test_result_hook_sees_each_outcome_before_the_client():
    seen: list[tuple[str, str | None]] = []
    lane = Lane(
        capacity=2, on_result=lambda kind, err: seen.append((kind, type(err).__name__ if err else None))
    )
    lane.start()
    ok = lane.submit("generate", lambda _c: 1)
    assert ok.future.result(WAIT) == 1
    assert seen == [("generate", None)]

    def boom(_ctx):
        raise RuntimeError("device lost")

    bad = lane.submit("interrogate", boom)
    with pytest.raises(RuntimeError, match="device lost"):
        bad.future.result(WAIT)
    assert seen[-1] == ("interrogate", "RuntimeError")
    lane.stop(1.0)


def test_failed_init_closes_the_lane_and_reports():
    reported: list[BaseException | None] = []
    lane = Lane(capacity=1)

    def init():
        raise OSError("unet.axmodel: no such file")

    lane.start(init=init, on_init_error=lambda _k, err: reported.append(err))
    assert lane.wait_until(lambda s: s.state == "closed", WAIT)
    assert "unet.axmodel" in (lane.status().reason or "")
    assert isinstance(reported[0], OSError)
    with pytest.raises(LaneUnavailable):
        lane.submit("generate", lambda _c: None)


def test_stop_interrupts_a_job_that_outlives_the_grace_period():
    lane = Lane(capacity=1)
    lane.start()
    started = threading.Event()

    def long_job(ctx):
        started.set()
        for i in range(10_000):
            ctx.on_step(i, 10_000)
            threading.Event().wait(0.01)  # one "step" of work

    job = lane.submit("generate", long_job)
    assert started.wait(WAIT)
    assert lane.stop(grace_s=0.2)
    with pytest.raises(Cancelled):
        job.future.result(0)
