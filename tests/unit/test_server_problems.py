"""Errors become responses in one place (the problems module): an exception that reaches the app's
handlers, from any route, gets its status, headers and body shape there."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pi_axera_sd.interrogate.errors import WarmingUp
from pi_axera_sd.interrogate.protocol import WarmupState
from pi_axera_sd.server.app import create_app
from pi_axera_sd.server.core.failures import counts_as_runtime_failure, to_api_error
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


# Every error type this package raises on purpose, with the status it must get if it reaches a
# response. A new type fails the test below until it is placed here, so no class becomes a counted
# 500 by accident.
EXPECTED_STATUS = {
    "InvalidInput": 400,  # the client's fault
    "PayloadTooLarge": 413,
    "Cancelled": 409,  # interrupted on purpose
    "WarmingUp": 503,  # a refusal, with Retry-After
    # the runtime's or the model's: a 500 that counts toward the restart limit
    "PiAxeraError": 500,
    "ModelError": 500,
    "RuntimeUnavailable": 500,
    "ModelIncompatible": 500,
    "TimeInputMissing": 500,
    "AxengineMissing": 500,  # these three stop a start with their own exit codes; mid-run, the NPU's fault
    "DriverMissing": 500,
    "NpuNotReady": 500,
    # raised before the service answers (start-up) or by other commands, never inside a request
    "FirstRunFailed": 500,
    "ConfigError": 500,
    "InstanceError": 500,
    "PullError": 500,
}


def _error_types() -> dict[str, type]:
    import importlib
    import pkgutil

    import pi_axera_sd
    from pi_axera_sd.errors import PiAxeraError

    for module in pkgutil.walk_packages(pi_axera_sd.__path__, "pi_axera_sd."):
        if module.name.endswith("__main__"):  # runs the CLI when imported
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional extra (torch, diffusers) this install lacks
            continue
    found, todo = {}, [PiAxeraError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_type_has_a_deliberate_status() -> None:
    found = _error_types()
    assert set(found) <= set(EXPECTED_STATUS), (
        f"place these in EXPECTED_STATUS: {set(found) - set(EXPECTED_STATUS)}"
    )
    for name, cls in found.items():
        exc = cls.__new__(cls)
        Exception.__init__(exc, "what went wrong")
        if name == "WarmingUp":
            exc = WarmingUp(HALF_WARM)
        assert to_api_error(exc).status == EXPECTED_STATUS[name], name
        assert counts_as_runtime_failure(exc) == (EXPECTED_STATUS[name] == 500), name
