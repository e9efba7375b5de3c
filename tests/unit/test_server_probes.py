"""``/ready`` for probes that carry no credentials (HAProxy, systemd), and its polls kept out of
the journal. The app is not started: no models load, so ``/ready`` answers 503 "not ready"."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pi_axera_sd.server.app import create_app
from pi_axera_sd.server.core.logs import ACCESS_LOGGER
from support.server import make_settings

TOKEN = "probe-test-token"


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, api_token=TOKEN)))


def test_ready_needs_no_credentials_when_auth_is_on_and_the_rest_still_does(client: TestClient) -> None:
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert "WWW-Authenticate" not in ready.headers
    for path in ("/metrics", "/sdapi/v1/options", "/sdapi/v1/progress", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 401, path
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    documented = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "401" not in documented["paths"]["/ready"]["get"]["responses"]
    assert "401" in documented["paths"]["/metrics"]["get"]["responses"]


def test_a_not_ready_poll_is_logged_at_debug_and_a_refused_request_at_info(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=ACCESS_LOGGER):
        assert client.get("/ready").status_code == 503
        assert client.get("/metrics").status_code == 401
    levels = {r.fields["path"]: r.levelno for r in caplog.records if r.name == ACCESS_LOGGER}
    assert levels == {"/ready": logging.DEBUG, "/metrics": logging.INFO}
