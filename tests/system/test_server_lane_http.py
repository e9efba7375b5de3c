"""The inference lane seen over HTTP, with the server running in this process so a test can hold a
job at a step boundary: backpressure, progress, interrupt/skip, client disconnects, runtime
failures, and the interrogation routes against a test double of the Interrogator protocol."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from pi_axera_sd.interrogate.errors import WarmingUp
from pi_axera_sd.interrogate.protocol import CategoryResult, StructuredResult, TagScore, WarmupState
from pi_axera_sd.server.app import create_app
from pi_axera_sd.server.core.runner import build_server
from support.server import (
    SEED_PNG_1X1,
    FailingInner,
    GatedPipeline,
    load_tiny,
    make_settings,
    running_server,
)

WAIT = 15.0


@pytest.fixture(scope="module")
def real_pipeline(tiny_model_dir):
    return load_tiny(tiny_model_dir)


@pytest.fixture
def gated(real_pipeline):
    gate = GatedPipeline(real_pipeline)
    yield gate
    gate.release()


def _post(url: str, path: str, body: dict, **kw) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=60, **kw)


# ---- backpressure and progress -----------------------------------------------------------------


def test_full_queue_answers_503_at_once_while_earlier_jobs_complete(tiny_model_dir, gated):
    app = create_app(make_settings(tiny_model_dir, queue_size=2), pipeline=gated)
    lane = app.state.service.lane
    with running_server(app) as url, ThreadPoolExecutor(3) as pool:
        gated.hold(1)
        first = pool.submit(_post, url, "/generate", {"prompt": "first", "seed": 1})
        assert gated.held.wait(WAIT)
        second = pool.submit(_post, url, "/generate", {"prompt": "second", "seed": 2})
        assert lane.wait_until(lambda s: s.queued == 1, WAIT)
        third = pool.submit(_post, url, "/sdapi/v1/txt2img", {"prompt": "third", "seed": 3})
        assert lane.wait_until(lambda s: s.queued == 2, WAIT)

        progress = httpx.get(f"{url}/sdapi/v1/progress").json()
        assert progress["state"]["job_count"] == 3
        assert (progress["state"]["sampling_step"], progress["state"]["sampling_steps"]) == (0, 4)
        assert progress["progress"] == 0.0

        start = time.monotonic()
        refused = _post(url, "/generate", {"prompt": "fourth"})
        refused_a1111 = _post(url, "/sdapi/v1/txt2img", {"prompt": "fifth"})
        assert time.monotonic() - start < 5.0  # answered at once, not after the held job
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["status"] == "error" and "queue is full" in refused.json()["error"]
        assert refused_a1111.status_code == 503
        assert refused_a1111.json()["error"] == "QueueFull"
        assert "Retry-After" in refused_a1111.headers

        gated.release()
        answers = [f.result(WAIT) for f in (first, second, third)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["seed"] for a in answers[:2]] == [1, 2]
    assert gated.started == ["first", "second", "third"]  # FIFO; the refused ones never ran
    assert gated.threads == {"inference-lane"}  # the accelerator is used from the lane thread only


def test_interrupt_returns_the_finished_images(tiny_model_dir, gated):
    app = create_app(make_settings(tiny_model_dir), pipeline=gated)
    with running_server(app) as url, ThreadPoolExecutor(1) as pool:
        gated.hold(2)  # the second image of the batch waits at its first step
        batch = pool.submit(
            _post, url, "/sdapi/v1/txt2img", {"prompt": "batch", "seed": 100, "batch_size": 3}
        )
        assert gated.held.wait(WAIT)
        progress = httpx.get(f"{url}/sdapi/v1/progress").json()
        assert progress["state"]["job_no"] == 1
        assert progress["progress"] == pytest.approx(1 / 3, abs=1e-3)
        assert progress["eta_relative"] > 0
        assert httpx.post(f"{url}/sdapi/v1/interrupt").json() == {}
        gated.release()
        answer = batch.result(WAIT)
    assert answer.status_code == 200
    info = json.loads(answer.json()["info"])
    assert len(answer.json()["images"]) == 1
    assert info["all_seeds"] == [100]
    assert info["interrupted"] is True
    assert gated.started == ["batch", "batch"]  # the third image was never started


def test_interrupt_before_any_image_is_409_on_generate(tiny_model_dir, gated):
    app = create_app(make_settings(tiny_model_dir), pipeline=gated)
    with running_server(app) as url, ThreadPoolExecutor(1) as pool:
        gated.hold(1)
        job = pool.submit(_post, url, "/generate", {"prompt": "stop me"})
        assert gated.held.wait(WAIT)
        httpx.post(f"{url}/sdapi/v1/interrupt")
        gated.release()
        answer = job.result(WAIT)
        assert answer.status_code == 409
        assert answer.json() == {"status": "error", "error": "interrupted before the image was finished"}
        # The next job is not affected by the earlier interrupt.
        assert _post(url, "/generate", {"prompt": "after"}).status_code == 200


def test_skip_drops_only_the_running_image(tiny_model_dir, gated):
    app = create_app(make_settings(tiny_model_dir), pipeline=gated)
    with running_server(app) as url, ThreadPoolExecutor(1) as pool:
        gated.hold(2)
        batch = pool.submit(_post, url, "/sdapi/v1/txt2img", {"prompt": "skip", "seed": 200, "n_iter": 3})
        assert gated.held.wait(WAIT)
        httpx.post(f"{url}/sdapi/v1/skip")
        gated.release()
        answer = batch.result(WAIT)
    info = json.loads(answer.json()["info"])
    assert info["all_seeds"] == [200, 202]
    assert len(answer.json()["images"]) == 2
    assert info["interrupted"] is False


def test_a_client_that_disconnects_while_queued_loses_its_place(tiny_model_dir, gated):
    app = create_app(make_settings(tiny_model_dir), pipeline=gated)
    lane = app.state.service.lane
    with running_server(app) as url, ThreadPoolExecutor(1) as pool:
        gated.hold(1)
        first = pool.submit(_post, url, "/generate", {"prompt": "stays"})
        assert gated.held.wait(WAIT)
        body = json.dumps({"prompt": "walked away"}).encode()
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = "POST /generate HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            assert lane.wait_until(lambda s: s.queued == 1, WAIT)
        # Socket closed: the server notices and withdraws the job without waiting for the lane.
        assert lane.wait_until(lambda s: s.queued == 0, WAIT)
        gated.release()
        assert first.result(WAIT).status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
        assert 'pi_axera_sd_http_requests_total{method="POST",route="/generate",status="499"} 1.0' in metrics
    assert gated.started == ["stays"]


# ---- runtime failures ---------------------------------------------------------------------------


def test_a_runtime_error_fails_that_job_alone(tiny_model_dir):
    pipeline = load_tiny(tiny_model_dir)
    failing = FailingInner(pipeline.unet.inner, failures=1)
    pipeline.unet.inner = failing
    app = create_app(make_settings(tiny_model_dir, max_runtime_failures=3), pipeline=pipeline)
    service = app.state.service
    with running_server(app) as url:
        broken = _post(url, "/generate", {"prompt": "unlucky"})
        assert broken.status_code == 500
        assert broken.json()["status"] == "error"
        assert "npu driver error" in broken.json()["error"]
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/ready").status_code == 200
        assert service.failures.consecutive == 1
        assert _post(url, "/generate", {"prompt": "fine again"}).status_code == 200
        assert service.failures.consecutive == 0  # a success resets the count
        failing.remaining = 1
        a1111 = _post(url, "/sdapi/v1/txt2img", {"prompt": "unlucky too"})
        assert a1111.status_code == 500
        assert "npu driver error" in a1111.json()["detail"]
        text = httpx.get(f"{url}/metrics").text
        assert 'pi_axera_sd_job_failures_total{kind="generate",reason="runtime"} 2.0' in text


def test_repeated_runtime_failures_turn_readiness_off_and_stop_the_server(tiny_model_dir):
    pipeline = load_tiny(tiny_model_dir)
    pipeline.unet.inner = FailingInner(pipeline.unet.inner)
    app = create_app(make_settings(tiny_model_dir, max_runtime_failures=2), pipeline=pipeline)
    service = app.state.service
    server = build_server(app, service.settings, port=0)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    assert server.started_event.wait(WAIT)
    url = f"http://127.0.0.1:{server.port}"
    assert _post(url, "/generate", {"prompt": "one"}).status_code == 500
    assert service.ready()[0] is True
    assert _post(url, "/generate", {"prompt": "two"}).status_code == 500
    ready, reason = service.ready()
    assert ready is False and "2 consecutive runtime failures" in reason
    thread.join(WAIT)  # nobody asked it to stop: the failure policy did
    assert not thread.is_alive()
    assert service.exit_code == 3


# ---- auth and CORS ------------------------------------------------------------------------------


def test_basic_auth_and_bearer_token_guard_every_route_but_health(tiny_model_dir, real_pipeline, caplog):
    settings = make_settings(
        tiny_model_dir,
        api_auth="alice:s3cret,bob:pw:with:colons",
        api_token="tok-123",
        cors_origins=["https://ui.example"],
    )
    app = create_app(settings, pipeline=real_pipeline)
    with running_server(app) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        denied = _post(url, "/generate", {"prompt": "x"})
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"].startswith('Basic realm="pi-axera-sd"')
        assert "Bearer" in denied.headers["WWW-Authenticate"]
        assert denied.json() == {"status": "error", "error": "authentication required"}
        denied_a1111 = httpx.get(f"{url}/sdapi/v1/options")
        assert denied_a1111.status_code == 401 and denied_a1111.json()["error"] == "Unauthorized"
        assert httpx.get(f"{url}/ready").status_code == 200  # load balancer and systemd probes
        for path in ("/metrics", "/docs", "/sdapi/v1/progress"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
        assert httpx.get(f"{url}/sdapi/v1/options", auth=("alice", "wrong")).status_code == 401
        assert httpx.get(f"{url}/sdapi/v1/options", auth=("mallory", "s3cret")).status_code == 401
        assert httpx.get(f"{url}/sdapi/v1/options", auth=("alice", "s3cret")).status_code == 200
        assert httpx.get(f"{url}/sdapi/v1/options", auth=("bob", "pw:with:colons")).status_code == 200
        bearer = {"Authorization": "Bearer tok-123"}
        assert _post(url, "/generate", {"prompt": "x"}, headers=bearer).status_code == 200
        assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401

        webuiapi = pytest.importorskip("webuiapi")
        api = webuiapi.WebUIApi(
            host="127.0.0.1", port=int(url.rsplit(":", 1)[1]), username="alice", password="s3cret"
        )
        assert len(api.txt2img(prompt="authorised", seed=1).images) == 1

        # CORS preflight is answered for the configured origin without credentials.
        preflight = httpx.options(
            f"{url}/sdapi/v1/txt2img",
            headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
        other = httpx.get(f"{url}/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    assert "s3cret" not in caplog.text and "tok-123" not in caplog.text


def test_without_auth_settings_nothing_asks_for_credentials(tiny_model_dir, real_pipeline):
    app = create_app(make_settings(tiny_model_dir), pipeline=real_pipeline)
    with running_server(app) as url:
        for path in ("/ready", "/metrics", "/sdapi/v1/options", "/sdapi/v1/progress"):
            answer = httpx.get(f"{url}{path}")
            assert answer.status_code == 200, path
            assert "WWW-Authenticate" not in answer.headers
        assert (
            "access-control-allow-origin"
            not in httpx.get(f"{url}/health", headers={"Origin": "https://ui.example"}).headers
        )


# ---- interrogation routes --------------------------------------------------------------------------


class FakeInterrogator:
    """TEST DOUBLE of the Interrogator protocol (the real CLIP engine is tested by its own suite).

    Its taxonomy "warm-up" advances one batch per permit the test grants, so a test can look at
    the service while it is still warming up."""

    def __init__(self, total: int = 20, batch: int = 10) -> None:
        self.total, self.batch, self.done = total, batch, 0
        self.permits = threading.Semaphore(0)
        self.calls: list[tuple] = []
        self.threads: set[str] = set()

    def status(self) -> WarmupState:
        return WarmupState(self.done >= self.total, self.done, self.total, "embedding the taxonomy")

    def warmup_step(self) -> bool:
        self.threads.add(threading.current_thread().name)
        if self.permits.acquire(timeout=0.05):
            self.done = min(self.total, self.done + self.batch)
        return self.done < self.total

    def tags(self, image, top_k=10, threshold=0.22):
        self.calls.append(("tags", image.size, top_k, threshold))
        self.threads.add(threading.current_thread().name)
        return [TagScore("fox", 0.31), TagScore("snow", 0.25)][:top_k]

    def structured(self, image, categories, general_top_k=10, general_threshold=0.2):
        self.calls.append(("structured", image.size, dict(categories)))
        results = {name: CategoryResult(labels[-1], 0.9375) for name, labels in categories.items()}
        return StructuredResult(results, ["fox"] if self.status().ready else [])


def _png_b64(size=(64, 48)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_interrogation_routes_with_a_warming_up_interrogator(tiny_model_dir, real_pipeline):
    fake = FakeInterrogator()
    app = create_app(
        make_settings(tiny_model_dir, max_structured_labels=4), pipeline=real_pipeline, interrogator=fake
    )
    lane = app.state.service.lane
    image = _png_b64()
    with running_server(app) as url:
        warming = _post(url, "/sdapi/v1/interrogate", {"image": image})
        assert warming.status_code == 503
        assert "warming up" in warming.json()["detail"] and "0/20" in warming.json()["detail"]
        assert warming.json()["errors"]["progress"] == 0.0
        assert int(warming.headers["Retry-After"]) > 0

        categories = {"animal": ["cat", "fox"], "season": ["summer", "winter"]}
        early = _post(url, "/sdapi/v1/interrogate/structured", {"image": image, "categories": categories})
        assert early.status_code == 200
        assert early.json() == {
            "results": {
                "animal": {"winner": "fox", "confidence": 0.9375},
                "season": {"winner": "winter", "confidence": 0.9375},
            },
            "general_tags": [],
        }

        fake.permits.release(2)
        assert lane.wait_until(lambda s: not s.background, WAIT)  # warm-up finished on the lane
        flat = _post(
            url, "/sdapi/v1/interrogate", {"image": f"data:image/png;base64,{image}", "model": "clip"}
        )
        assert flat.status_code == 200
        assert flat.json() == {
            "caption": "fox, snow",
            "interrogations": [{"tag": "fox", "score": 0.31}, {"tag": "snow", "score": 0.25}],
        }
        clamped = _post(url, "/sdapi/v1/interrogate", {"image": image, "top_k": 5000, "threshold": 3})
        assert clamped.status_code == 200
        assert fake.calls[-1] == ("tags", (64, 48), 100, 1.0)
        later = _post(url, "/sdapi/v1/interrogate/structured", {"image": image, "categories": categories})
        assert later.json()["general_tags"] == ["fox"]

        unknown = _post(url, "/sdapi/v1/interrogate", {"image": image, "model": "deepdanbooru"})
        assert unknown.status_code == 404 and unknown.json()["error"] == "NotFound"
        assert _post(url, "/sdapi/v1/interrogate", {"model": "clip"}).status_code == 400
        assert _post(url, "/sdapi/v1/interrogate", {"image": "@@not base64@@"}).status_code == 400
        assert _post(url, "/sdapi/v1/interrogate", {"image": image, "top_k": "many"}).status_code == 400
        for bad in (
            None,
            [],
            {},
            {"a": []},
            {"a": "cat"},
            {"a": [1, 2]},
            {"a": ["", "x"]},
            {"a": list("abcde")},
        ):
            answer = _post(url, "/sdapi/v1/interrogate/structured", {"image": image, "categories": bad})
            assert answer.status_code == 400, bad
            assert "categories" in answer.json()["detail"]
    assert fake.threads == {"inference-lane"}


class RewarmingInterrogator(FakeInterrogator):
    """Says it is ready, then finds its taxonomy gone on the lane (a route that skips the pre-check)."""

    def __init__(self) -> None:
        super().__init__(total=0)

    def structured(self, image, categories, general_top_k=10, general_threshold=0.2):
        raise WarmingUp(WarmupState(False, 5, 20, "embedding the taxonomy"))


class BrokenInterrogator(FakeInterrogator):
    def status(self) -> WarmupState:
        return WarmupState(False, 0, 20, "embedding failed", error="taxonomy file unreadable")


def test_interrogation_503s_carry_retry_after_and_warming_up_on_the_lane_is_no_runtime_failure(
    tiny_model_dir, real_pipeline
):
    categories = {"animal": ["cat", "fox"]}
    body = {"image": _png_b64(), "categories": categories}
    app = create_app(
        make_settings(tiny_model_dir), pipeline=real_pipeline, interrogator=RewarmingInterrogator()
    )
    with running_server(app) as url:
        rewarming = _post(url, "/sdapi/v1/interrogate/structured", body)
        assert rewarming.status_code == 503
        assert int(rewarming.headers["Retry-After"]) > 0
        assert "5/20" in rewarming.json()["detail"] and rewarming.json()["errors"]["warming_up"] is True
        assert app.state.service.failures.total == 0
    broken = create_app(
        make_settings(tiny_model_dir), pipeline=real_pipeline, interrogator=BrokenInterrogator()
    )
    missing = create_app(make_settings(tiny_model_dir), pipeline=real_pipeline)
    for refusing in (broken, missing):
        with running_server(refusing) as url:
            for path in ("/sdapi/v1/interrogate", "/sdapi/v1/interrogate/structured"):
                answer = _post(url, path, body)
                assert answer.status_code == 503, path
                assert int(answer.headers["Retry-After"]) > 0, path


def test_interrogation_without_a_model_is_503(tiny_model_dir, real_pipeline):
    app = create_app(make_settings(tiny_model_dir), pipeline=real_pipeline)
    with running_server(app) as url:
        answer = _post(url, "/sdapi/v1/interrogate", {"image": SEED_PNG_1X1})
        assert answer.status_code == 503
        assert answer.json()["detail"].startswith("interrogation model not loaded: no CLIP model files")
        structured = _post(
            url, "/sdapi/v1/interrogate/structured", {"image": SEED_PNG_1X1, "categories": {"a": ["b"]}}
        )
        assert structured.status_code == 503
