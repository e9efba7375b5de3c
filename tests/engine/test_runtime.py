"""Runtimes behind one session interface; the NPU path exercised through a pyaxengine stand-in."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from pi_axera_sd.config import Settings
from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
from pi_axera_sd.errors import ModelError, RuntimeUnavailable
from pi_axera_sd.runtime import RuntimeOptions, open_session, runtime_for
from pi_axera_sd.runtime.onnxrt import providers_for
from pi_axera_sd.wiring import model_layout, prefers_axmodel, runtime_options
from support import fake_axengine


def test_onnxruntime_session_reports_names_shapes_dtypes(tiny_model_dir):
    session = open_session(tiny_model_dir / "text_encoder" / "sd15_text_encoder_sim.onnx")
    assert session.runtime == "onnxruntime" and session.provider == "CPUExecutionProvider"
    (ids,) = session.inputs
    assert ids.name == "input_ids" and ids.shape == (1, 77) and ids.dtype == np.int64
    assert session.outputs[0].name == "last_hidden_state"
    # int32 ids (what an NPU client would hold) are cast to the graph's int64
    out = session.run({"input_ids": np.zeros((1, 77), np.int32)})[0]
    assert out.shape == (1, 77, 32) and out.dtype == np.float32


def test_feed_mismatch_names_the_file(tiny_model_dir):
    session = open_session(tiny_model_dir / "vae_decoder.onnx")
    with pytest.raises(ModelError, match=r"vae_decoder\.onnx.*missing \['x'\].*unexpected \['y'\]"):
        session.run({"y": np.zeros((1, 4, 16, 16), np.float32)})


def test_cuda_falls_back_to_cpu_when_absent(caplog):
    assert providers_for("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert "CUDA requested" in caplog.text
    assert (
        providers_for("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    )
    assert providers_for("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_runtime_is_chosen_by_file_type(tmp_path):
    auto = RuntimeOptions()
    assert runtime_for(tmp_path / "unet.axmodel", auto) == "axengine"
    assert runtime_for(tmp_path / "unet.onnx", auto) == "onnxruntime"
    assert runtime_for(tmp_path / "unet.onnx", RuntimeOptions(runtime="openvino")) == "openvino"
    with pytest.raises(ValueError, match="runtime must be one of"):
        RuntimeOptions(runtime="tensorrt")


def _npu_folder(src, dst):
    """The tiny model with every graph also present as .axmodel (ONNX bytes, run by the stand-in)."""
    shutil.copytree(src, dst)
    for onnx_file in list(dst.rglob("*.onnx")):
        if onnx_file.name == "unet.onnx":
            continue  # external weights: keep the UNet on ONNX Runtime; a mixed folder is allowed
        shutil.copy(onnx_file, onnx_file.with_suffix(".axmodel"))
    return dst


def test_npu_path_runs_the_same_pipeline_code(tiny_model_dir, tiny_engine, tmp_path, monkeypatch):
    fake_axengine.install(monkeypatch, providers=("AXCLRTExecutionProvider",))
    folder = _npu_folder(tiny_model_dir, tmp_path / "npu")
    monkeypatch.setenv("MODELS_DIR", str(folder))
    monkeypatch.setenv("PI_AXERA_SD_RUNTIME", "auto")
    # a host without OpenVINO: the folder's .onnx UNet runs on ONNX Runtime, exact like tiny_engine
    monkeypatch.setattr("pi_axera_sd.runtime.choice.openvino_installed", lambda: False)
    settings = Settings()
    assert prefers_axmodel(settings)  # pyaxengine importable -> .axmodel preferred
    layout = model_layout(settings)
    assert layout.text_encoder.suffix == ".axmodel" and layout.vae_decoder.suffix == ".axmodel"
    assert layout.unet.suffix == ".onnx"
    npu = Pipeline.load(layout, runtime_options(settings))
    assert npu.text_encoder.runtime == "axengine" and npu.text_encoder.provider == "AXCLRTExecutionProvider"
    assert npu.text_encoder.inputs[0].dtype == np.int32

    ours = npu.generate(GenerationParams("a fox on the npu", seed=8))
    reference = tiny_engine.generate(GenerationParams("a fox on the npu", seed=8))
    assert np.array_equal(ours.pixels, reference.pixels)
    # the stand-in saw int32 ids, exactly what the compiled text encoder takes
    assert {"input_ids": np.dtype(np.int32)} in fake_axengine.InferenceSession.feeds
    opened = {e["path"].rsplit("/", 1)[-1]: e["providers"] for e in fake_axengine.InferenceSession.opened}
    assert opened["vae_decoder.axmodel"] == ["AXCLRTExecutionProvider"]


def test_board_provider_is_preferred_order_and_explicit_choice(tiny_model_dir, tmp_path, monkeypatch):
    fake_axengine.install(monkeypatch, providers=("AxEngineExecutionProvider", "AXCLRTExecutionProvider"))
    folder = _npu_folder(tiny_model_dir, tmp_path / "npu")
    path = folder / "vae_decoder.axmodel"
    assert open_session(path).provider == "AxEngineExecutionProvider"
    chosen = open_session(path, RuntimeOptions(ax_provider="AXCLRTExecutionProvider"))
    assert chosen.provider == "AXCLRTExecutionProvider"


def test_missing_pyaxengine_says_what_to_install(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "axengine", None)  # import axengine -> ImportError
    folder = _npu_folder(tiny_model_dir, tmp_path / "npu")
    with pytest.raises(RuntimeUnavailable, match=r"pyaxengine is not installed.*axengine-<version>.*AXCL"):
        open_session(folder / "vae_decoder.axmodel")
    assert not prefers_axmodel(Settings(models_dir=folder))
    # with no pyaxengine, auto mode falls back to the .onnx files of the same folder
    assert resolve_layout(folder, prefer_axmodel=False).vae_decoder.suffix == ".onnx"


def test_no_npu_device_or_unknown_provider(tiny_model_dir, tmp_path, monkeypatch):
    folder = _npu_folder(tiny_model_dir, tmp_path / "npu")
    fake_axengine.install(monkeypatch, providers=())
    with pytest.raises(RuntimeUnavailable, match="found no AX650N device"):
        open_session(folder / "vae_decoder.axmodel")
    fake_axengine.install(monkeypatch, providers=("AxEngineExecutionProvider",))
    with pytest.raises(RuntimeUnavailable, match="AXCLRTExecutionProvider is not available"):
        open_session(folder / "vae_decoder.axmodel", RuntimeOptions(ax_provider="AXCLRTExecutionProvider"))


def test_driver_load_failure_is_a_model_error(tiny_model_dir, tmp_path, monkeypatch):
    module = fake_axengine.install(monkeypatch)

    def broken(path, providers=None):
        raise RuntimeError("axclrtEngineLoadFromFile failed")

    monkeypatch.setattr(module, "InferenceSession", broken)
    folder = _npu_folder(tiny_model_dir, tmp_path / "npu")
    with pytest.raises(ModelError, match=r"vae_decoder\.axmodel.*axclrtEngineLoadFromFile failed"):
        open_session(folder / "vae_decoder.axmodel")


def test_openvino_runs_the_same_pipeline(tiny_model_dir, tiny_engine):
    """OpenVINO reads the same ONNX files; at f32 it matches ONNX Runtime, at bf16 it is close."""
    from pi_axera_sd.engine.pipeline import GenerationParams

    f32 = Pipeline.load(resolve_layout(tiny_model_dir), RuntimeOptions(runtime="openvino", precision="f32"))
    assert f32.unet.runtime == "openvino" and f32.unet.provider == "CPU/f32"
    assert [s.name for s in f32.unet.inputs] == [s.name for s in tiny_engine.unet.inputs]
    ours = f32.generate(GenerationParams("a fox", seed=4)).pixels.astype(int)
    ref = tiny_engine.generate(GenerationParams("a fox", seed=4)).pixels.astype(int)
    assert np.abs(ours - ref).max() <= 1
    # the same session object keeps working across calls (OpenVINO reuses its output buffers)
    again = f32.generate(GenerationParams("a fox", seed=4)).pixels.astype(int)
    assert np.array_equal(ours, again)


@pytest.mark.torch  # needs the openvino extra
def test_openvino_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "unet.onnx"
    bad.write_bytes(b"junk")
    with pytest.raises(ModelError, match="OpenVINO could not load"):
        open_session(bad, RuntimeOptions(runtime="openvino"))


def test_open_sessions_opens_cpu_models_in_parallel_and_npu_models_one_by_one(monkeypatch, tmp_path):
    import threading
    import time

    import pi_axera_sd.runtime as runtime

    at_once, busy, lock = [0], [0], threading.Lock()

    def slow_open(path, options=None):
        with lock:
            busy[0] += 1
            at_once[0] = max(at_once[0], busy[0])
        time.sleep(0.05)
        with lock:
            busy[0] -= 1
        if path.name.startswith("broken"):
            raise runtime.ModelError(f"cannot open {path.name}")
        return path.name

    monkeypatch.setattr(runtime, "open_session", slow_open)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 4)
    cpu = {"a": tmp_path / "a.onnx", "b": tmp_path / "b.xml", "none": None, "c": tmp_path / "c.onnx"}
    assert runtime.open_sessions(cpu) == {"a": "a.onnx", "b": "b.xml", "none": None, "c": "c.onnx"}
    assert at_once[0] > 1

    at_once[0] = 0
    npu = {"a": tmp_path / "a.axmodel", "b": tmp_path / "b.axmodel"}
    assert runtime.open_sessions(npu) == {"a": "a.axmodel", "b": "b.axmodel"}
    assert at_once[0] == 1  # the device's runtime gets one model at a time
    opened = []
    monkeypatch.setattr(
        runtime, "open_session", lambda path, options=None: opened.append(path.name) or slow_open(path)
    )
    with pytest.raises(runtime.ModelError, match="broken"):
        runtime.open_sessions({"a": tmp_path / "broken.axmodel", "b": tmp_path / "b.axmodel"})
    assert opened == ["broken.axmodel"]  # stops at the first failure: each NPU open counts on the device

    # the first failure in the given order is the one raised, whichever thread finished first
    names = {"ok": "ok.onnx", "first": "broken1.onnx", "second": "broken2.onnx"}
    broken = {key: tmp_path / name for key, name in names.items()}
    with pytest.raises(runtime.ModelError, match="broken1"):
        runtime.open_sessions(broken)
