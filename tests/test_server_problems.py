"""Errors become responses in one place (the problems module): an exception that reaches the app's
handlers, from any route, gets its status, headers and body shape there."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pi_axera_sd.interrogate.errors import WarmingUp
from pi_axera_sd.interrogate.protocol import WarmupState
from pi_axera_sd.server.app import create_app
from pi_axera_sd.server.dialects.problems import counts_as_runtime_failure, to_api_error
from support.server import make_settings

HALF_WARM = WarmupState(ready=False, done=150, total=300, message="embedding the taxonomy")


def test_warming_up_is_a_503_with_retry_after_that_is_not_a_runtime_failure() -> None:
    err = to_api_error(WarmingUp(HALF_WARM))
    assert err.status == 503
    assert int(err.headers["Retry-After"]) > 0
    assert "warming up" in err.message and "150/300" in err.message and "50%" in err.message
    assert err.errors == {"warming_up": True, "progress": 0.5, "done": 150, "total": 300}
    assert not counts_as_runtime_failure(WarmingUp(HALF_WARM))


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        (
            "/sdapi/v1/warming-probe",
            lambda body: body["error"] == "ServiceUnavailable" and "150/300" in body["detail"],
        ),
        ("/v1/warming-probe", lambda body: body["error"]["type"] == "server_error"),
        ("/warming-probe", lambda body: body["status"] == "error" and "warming up" in body["error"]),
    ],
)
def test_warming_up_raised_by_a_route_without_a_pre_check_is_503_not_500(tmp_path: Path, path, shape) -> None:
    # The app is not started (no lifespan, no models): only routing and the error handlers run.
    app = create_app(make_settings(tmp_path))

    async def probe() -> None:
        raise WarmingUp(HALF_WARM)

    app.add_api_route(path, probe)
    answer = TestClient(app).get(path)
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert shape(answer.json()), answer.json()
