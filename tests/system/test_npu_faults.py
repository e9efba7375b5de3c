"""The NPU path against the pyaxengine 0.1.3 contract (through the stand-in): the wheel's own
behaviour, device selection, and each failure mode with its message, exit code and recovery."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pi_axera_sd import exitcodes
from pi_axera_sd.errors import ModelError
from pi_axera_sd.runtime import RuntimeOptions, open_session
from pi_axera_sd.runtime.axengine import axengine_available
from pi_axera_sd.runtime.faults import (
    AxengineMissing,
    DriverMissing,
    ModelIncompatible,
    NpuNotReady,
    exit_code_for,
)
from pi_axera_sd.server.app import create_app
from pi_axera_sd.server.core.service import Service
from support import fake_axengine
from support.server import make_settings, running_server

AX = RuntimeOptions(runtime="axengine")


def as_axmodels(src: Path, dst: Path) -> Path:
    """The tiny model with every graph as .axmodel only (ONNX bytes, run by the stand-in)."""
    shutil.copytree(src, dst)
    for onnx_file in list(dst.rglob("*.onnx")):
        onnx_file.rename(onnx_file.with_suffix(".axmodel"))
    return dst


@pytest.fixture(scope="module")
def npu_models(tiny_model_dir, tmp_path_factory) -> Path:
    return as_axmodels(tiny_model_dir, tmp_path_factory.mktemp("npu") / "models")


@pytest.fixture
def two_outputs(tmp_path) -> Path:
    """A graph whose outputs are declared b, then a (to see the order the runtime returns)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in ("b", "a")]
    nodes = [helper.make_node("Neg", ["x"], ["b"]), helper.make_node("Identity", ["x"], ["a"])]
    graph = helper.make_graph(nodes, "two", [x], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "two.axmodel"
    onnx.save(model, path)
    return path


# ---- the stand-in is the wheel's contract ------------------------------------------------------


def test_stand_in_matches_the_wheel_api(monkeypatch, two_outputs):
    axengine = fake_axengine.install(monkeypatch)
    assert [f.name for f in dataclasses.fields(axengine.NodeArg)] == ["name", "dtype", "shape"]
    session = axengine.InferenceSession(
        str(two_outputs), sess_options=axengine.SessionOptions(), providers=[fake_axengine.M2]
    )
    (x,) = session.get_inputs(shape_group=0)
    assert (x.name, x.dtype, x.shape) == ("x", np.dtype(np.float32), [1, 3])
    feed = {"x": np.array([[1, 2, 3]], np.float32)}
    b, a = session.run(["a", "b"], feed, run_options=None, shape_group=0)  # model order, not asked
    assert b.tolist() == [[-1, -2, -3]] and a.tolist() == [[1, 2, 3]]
    with pytest.raises(AssertionError) as bare:
        session.run(None, {"x": np.zeros((1, 4), np.float32)})
    assert str(bare.value) == ""
    with pytest.raises(AssertionError):
        session.run(None, {"x": np.zeros((1, 3), np.float64)})
    with pytest.raises(ValueError, match="x"):
        session.run(None, {})


def test_session_wrapper_returns_the_asked_order_and_names_a_rejected_feed(monkeypatch, two_outputs):
    fake_axengine.install(monkeypatch)
    session = open_session(two_outputs, AX)
    a, b = session.run({"x": np.array([[1, 2, 3]], np.float32)}, outputs=["a", "b"])
    assert a.tolist() == [[1, 2, 3]] and b.tolist() == [[-1, -2, -3]]
    with pytest.raises(ModelError, match=r"two\.axmodel: pyaxengine rejected the feed.*\[1, 4\]"):
        session.run({"x": np.zeros((1, 4), np.float32)})


def test_device_id_reaches_the_runtime_only_as_provider_options(monkeypatch, two_outputs):
    axengine = fake_axengine.install(monkeypatch)
    open_session(two_outputs, RuntimeOptions(runtime="axengine", npu_device=1))
    open_session(two_outputs, AX)
    opened = axengine.InferenceSession.opened
    assert [e["device_id"] for e in opened] == [1, 0]
    assert opened[0]["providers"] == [fake_axengine.M2]
    # the tuple form is accepted and ignored by the wheel: the stand-in stays on card 0 too
    axengine.InferenceSession(str(two_outputs), providers=[(fake_axengine.M2, {"device_id": 1})])
    assert opened[-1]["device_id"] == 0


def test_board_provider_has_no_device_choice(monkeypatch, two_outputs, caplog):
    axengine = fake_axengine.install(monkeypatch, providers=(fake_axengine.BOARD,))
    session = open_session(two_outputs, RuntimeOptions(runtime="axengine", npu_device=1))
    assert session.provider == fake_axengine.BOARD
    assert axengine.InferenceSession.opened[-1]["device_id"] == 0
    assert "no device choice; npu_device=1 ignored" in caplog.text


# ---- failure modes: class, message, exit code ------------------------------------------------------


def test_wheel_missing(monkeypatch, two_outputs):
    monkeypatch.setitem(sys.modules, "axengine", None)
    with pytest.raises(AxengineMissing, match="pyaxengine is not installed") as err:
        open_session(two_outputs, AX)
    assert exit_code_for(err.value) == exitcodes.CONFIG


def test_driver_library_missing(monkeypatch, two_outputs):
    fake_axengine.install(monkeypatch, fault="no_driver")
    assert not axengine_available()  # so auto mode keeps to the .onnx files
    with pytest.raises(DriverMissing, match=r"found no NPU driver library.*No providers") as err:
        open_session(two_outputs, AX)
    assert "not installed" not in str(err.value)
    assert exit_code_for(err.value) == exitcodes.CONFIG


@pytest.mark.parametrize("fault", ["axcl_init", "no_device", "sys_init"])
def test_driver_present_but_no_device_yet(monkeypatch, two_outputs, fault):
    fake_axengine.install(monkeypatch, fault=fault)
    assert axengine_available()  # importable with a provider: only a session can tell
    with pytest.raises(NpuNotReady, match="the NPU device 2 is not ready") as err:
        open_session(two_outputs, RuntimeOptions(runtime="axengine", npu_device=2))
    assert exit_code_for(err.value) == exitcodes.NOT_READY


def test_model_refused_by_the_card(monkeypatch, two_outputs):
    fake_axengine.install(monkeypatch, fault="load")
    with pytest.raises(ModelIncompatible, match=r"two\.axmodel: the NPU refused.*LoadFromFile") as err:
        open_session(two_outputs, AX)
    assert exit_code_for(err.value) == exitcodes.CONFIG


# ---- the service: wait for the driver, reopen after failures -------------------------------------


def _service(models: Path, **overrides) -> Service:
    settings = make_settings(models, runtime="axengine", **overrides)
    return Service(settings)


def _loaded(service: Service) -> None:
    service.start()
    assert service.lane.wait_until(lambda s: s.state != "starting", 60)


def test_not_ready_at_boot_is_waited_for(monkeypatch, npu_models):
    fake_axengine.install(monkeypatch, fault="no_device", fault_opens=2)
    service = _service(npu_models, npu_wait_s=30)
    try:
        _loaded(service)
        assert service.ready() == (True, "ready")
        state = service.accelerator.as_dict()
        assert state["state"] == "ready" and state["load_attempts"] == 3
        assert b'pi_axera_sd_accelerator_faults_total{fault="not_ready"} 2.0' in service.metrics.render()
    finally:
        service.stop(1)


def test_ready_says_it_waits_for_the_npu_and_a_stop_ends_the_wait(monkeypatch, npu_models):
    fake_axengine.install(monkeypatch, fault="no_device")
    service = _service(npu_models, npu_wait_s=600)
    service.start()
    try:
        for _ in range(300):  # bounded: 30 s (the accelerator's state does not wake lane waiters)
            if service.accelerator.state == "waiting":
                break
            time.sleep(0.1)
        ready, reason = service.ready()
        assert not ready and reason.startswith("waiting for the NPU: the NPU is not ready")
        assert "find total 0 device" in reason
    finally:
        service.stop(1)  # SIGTERM's path: the 600 s wait ends now
    assert service.lane.status().state == "closed"
    assert service.exit_code == exitcodes.OK and service.fatal_reason is None


def test_not_ready_past_the_wait_exits_75(monkeypatch, npu_models):
    fake_axengine.install(monkeypatch, fault="no_device")
    service = _service(npu_models, npu_wait_s=0.6)
    try:
        _loaded(service)
        assert service.exit_code == exitcodes.NOT_READY
        ready, reason = service.ready()
        assert not ready and "not ready" in reason and "npu_wait_s" in reason
        assert service.accelerator.as_dict()["fault"] == "not_ready"
    finally:
        service.stop(1)


def test_repeated_runtime_failures_reopen_the_sessions_then_exit_3(monkeypatch, npu_models):
    axengine = fake_axengine.install(monkeypatch)
    app = create_app(make_settings(npu_models, runtime="axengine", max_runtime_failures=2))
    service = app.state.service
    body = {"prompt": "a fox", "seed": 5}
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        sessions = len(axengine.InferenceSession.opened)
        fake_axengine.fail_next_runs(2)
        assert [http.post("/generate", json=body).status_code for _ in range(2)] == [500, 500]
        assert service.accelerator.as_dict()["reopens"] == 1
        assert len(axengine.InferenceSession.opened) == 2 * sessions  # every session reopened
        assert http.get("/ready").json()["accelerator"]["state"] == "ready"
        assert http.post("/generate", json=body).status_code == 200  # the hiccup is over
        assert b"pi_axera_sd_session_reopens_total 1.0" in http.get("/metrics").content
        fake_axengine.fail_next_runs(4)  # a fault that reopening does not cure
        assert [http.post("/generate", json=body).status_code for _ in range(4)] == [500] * 4
        # the 2nd failure reopened again (a success came between); the 4th ends the process
        assert service.accelerator.as_dict()["reopens"] == 2
        assert service.exit_code == exitcodes.RUNTIME and not service.ready()[0]
