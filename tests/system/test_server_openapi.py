"""The OpenAPI document against the service itself: a bounded, deterministic schemathesis run
(positive cases for every documented operation) over the real uvicorn runner and the tiny model,
plus OPTIONS and 405 answers."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from pi_axera_sd.server.app import create_app
from support.server import load_tiny, make_settings, running_server

EXAMPLES_PER_OPERATION = 12  # the whole run stays well under a minute on two cores
# not_a_server_error is replaced by the count below: a 503 (here: no CLIP model installed) is a
# documented answer, every other 5xx is a failure.
CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def base_url(tiny_model_dir):
    settings = make_settings(tiny_model_dir, max_images_per_request=1, queue_size=4)
    with running_server(create_app(settings, pipeline=load_tiny(tiny_model_dir))) as url:
        yield url


def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(base_url):
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def exercise(case) -> None:
            response = case.call(base_url=base_url, timeout=60)
            statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis failures
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {exc}"[:600])

        exercise()
    requests = sum(statuses.values())
    print(f"schemathesis: {operations} operations, {requests} requests, statuses {dict(statuses)}")
    print(f"schemathesis: {len(failures)} failures")
    assert operations >= 30
    server_errors = sum(n for code, n in statuses.items() if code >= 500 and code != 503)
    assert server_errors == 0, statuses
    assert failures == [], "\n".join(failures[:10])


def test_options_lists_every_method_of_a_path(base_url):
    answer = httpx.options(f"{base_url}/sdapi/v1/options")
    assert answer.status_code == 204
    assert set(answer.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}
    assert httpx.options(f"{base_url}/no/such/path").status_code == 404


def test_a_wrong_method_is_405_naming_every_allowed_one(base_url):
    answer = httpx.delete(f"{base_url}/sdapi/v1/options")
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}
    assert answer.json()["error"]


def test_the_document_describes_errors_and_metrics(base_url):
    doc = httpx.get(f"{base_url}/openapi.json").json()
    txt2img = doc["paths"]["/sdapi/v1/txt2img"]["post"]["responses"]
    for code in ("400", "413", "500", "503"):
        assert txt2img[code]["content"]["application/json"]["schema"]["$ref"].endswith("/A1111Error")
    generate = doc["paths"]["/generate"]["post"]["responses"]
    assert generate["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "422" not in generate
    # one set of error entries, added in one place: an interrupt's 409 where a route answers it
    for path in ("/generate", "/v1/images/generations", "/v1/images/edits"):
        assert "interrupted" in doc["paths"][path]["post"]["responses"]["409"]["description"], path
    assert "409" not in txt2img  # A1111 answers the images made so far instead
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
