"""``pi-axera-sd models verify``: each component's file, runtime, inputs and outputs vs. the engine."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from pi_axera_sd.cli import main
from pi_axera_sd.modeltools.verify import check_manifest, verify_model
from pi_axera_sd.runtime import RuntimeOptions

COMPONENTS = [
    "tokenizer",
    "text_encoder",
    "unet",
    "vae_decoder",
    "vae_encoder",
    "vae_decoder_tiny",
    "vae_encoder_tiny",  # the tiny model is exported with --tiny-vae: TAESD decoder and encoder
    "time_input_txt2img",
    "time_input_img2img",
]


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


def _rows(report):
    return {r.component: r for r in report.rows}


def test_tiny_model_is_ok_table_and_exit_code(tiny_model_dir, capsys):
    assert main(["models", "verify", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("component"))
    assert header.split() == ["component", "file", "runtime", "inputs", "outputs", "status"]
    for name in COMPONENTS:
        ending = "OK (from tokenizer.json)" if name == "tokenizer" else "OK"  # the form it read
        assert any(line.startswith(name) and line.endswith(ending) for line in out.splitlines()), name
    assert "unet.onnx" in out and "onnxruntime/CPU" in out
    assert "/down_blocks.0/resnets.0/act_1/Mul_output_0 [batch,128] float32" in out
    assert "vae_decoder.onnx" in out and "image [1,3,128,128] float32" in out
    assert "model: text width 32, latent 4x16x16, image 128x128, UNet time input: AXERA time embedding" in out
    listed = len(json.loads((tiny_model_dir / "manifest.json").read_text())["files"])
    assert f"manifest.json: {listed} files, sizes and sha256 match" in out
    assert out.rstrip().endswith("result: OK")


def test_json_report(tiny_model_dir, capsys):
    assert main(["models", "verify", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert [c["component"] for c in report["components"]] == COMPONENTS
    unet = report["components"][2]
    assert unet["file"] == "unet.onnx" and unet["runtime"] == "onnxruntime/CPU" and unet["status"] == "OK"
    assert unet["inputs"][0] == {"name": "sample", "shape": ["batch", 4, 16, 16], "dtype": "float32"}
    assert report["model"] == {
        "text_width": 32,
        "latent": [4, 16, 16],
        "image": [128, 128],
        "unet_time_input": "AXERA time embedding [batch,128] (time_input_*.npy)",
    }
    listed = len(json.loads((tiny_model_dir / "manifest.json").read_text())["files"])
    assert report["manifest"] == {"checked": listed, "sha256": True, "ok": True, "problems": []}


def test_decoder_replaced_by_text_encoder_is_a_mismatch(model_copy, capsys):
    shutil.copy(model_copy / "text_encoder/sd15_text_encoder_sim.onnx", model_copy / "vae_decoder.onnx")
    assert main(["models", "verify", str(model_copy)]) == 1
    out = capsys.readouterr().out
    decoder = next(line for line in out.splitlines() if line.startswith("vae_decoder"))
    assert "input_ids [1,77] int64" in decoder  # what the file declares, in the inputs column
    assert "mismatch: " in decoder and "expected latent [1,4,16,16] -> image [1,3,128,128]" in decoder
    size = (model_copy / "vae_decoder.onnx").stat().st_size
    assert f"vae_decoder.onnx has {size} bytes, manifest says" in out
    assert "result: FAILED (vae_decoder, manifest)" in out
    # the other components are still checked and fine
    report = verify_model(model_copy)
    assert [r.component for r in report.rows if not r.ok] == ["vae_decoder"]


def test_tiny_decoder_is_checked_like_the_engine_checks_it(model_copy):
    """The engine refuses a tiny VAE decoder that does not take the latent; verify must say so too."""
    shutil.copy(model_copy / "text_encoder/sd15_text_encoder_sim.onnx", model_copy / "vae_decoder_tiny.onnx")
    report = verify_model(model_copy, check_hashes=False)
    tiny = _rows(report)["vae_decoder_tiny"]
    assert not tiny.ok and "expected latent [1,4,16,16]" in tiny.status()
    assert [r.component for r in report.rows if not r.ok] == ["vae_decoder_tiny"]


def test_sha256_mismatch_and_no_hash(model_copy):
    data = bytearray((model_copy / "vae_encoder.onnx").read_bytes())
    data[-1] ^= 0xFF  # same size: only the hash tells
    (model_copy / "vae_encoder.onnx").write_bytes(bytes(data))
    check = check_manifest(model_copy)
    assert not check.ok and check.problems[0].startswith("vae_encoder.onnx sha256 ")
    assert check_manifest(model_copy, hashes=False).ok  # sizes only
    assert main(["models", "verify", str(model_copy), "--no-hash"]) in (0, 1)  # the graph may not load


def test_swapped_vae_files_and_wrong_time_rows(model_copy):
    shutil.copy(model_copy / "vae_decoder.onnx", model_copy / "vae_encoder.onnx")
    np.save(model_copy / "time_input_txt2img.npy", np.zeros((4, 64), np.float32))
    rows = _rows(verify_model(model_copy, check_hashes=False))
    assert rows["vae_decoder"].ok
    enc = rows["vae_encoder"]
    assert enc.state == "mismatch" and "image [1,3,128,128] -> mean||logvar [1,8,16,16]" in enc.status()
    t2i = rows["time_input_txt2img"]
    assert t2i.state == "mismatch" and "expected [4+,128]" in t2i.status() and "[4, 64]" in t2i.status()


def test_text_width_must_match_the_unet(model_copy):
    """A text encoder from another model (width 48) makes the UNet row say what it needs."""
    import onnx
    from onnx import TensorProto, helper

    ones = helper.make_tensor("ones", TensorProto.FLOAT, [1, 1, 48], [1.0] * 48)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["f", "axes"], ["u"]),
            helper.make_node("Mul", ["u", "ones"], ["last_hidden_state"]),
        ],
        "text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 77])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, 77, 48])],
        initializer=[ones, helper.make_tensor("axes", TensorProto.INT64, [1], [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, model_copy / "text_encoder/sd15_text_encoder_sim.onnx")
    report = verify_model(model_copy, check_hashes=False)
    rows = _rows(report)
    assert rows["text_encoder"].ok and report.facts.text_width == 48
    assert rows["unet"].state == "mismatch"
    assert "encoder_hidden_states width 32 != the text encoder's 48" in rows["unet"].status()


def test_plain_timestep_unet(tiny_plain_dir):
    report = verify_model(tiny_plain_dir)
    rows = _rows(report)
    assert report.ok, report.render()
    assert rows["unet"].inputs[1].name == "timestep"
    assert report.facts.time_input.startswith("timestep timestep")
    assert rows["time_input_txt2img"].status() == "OK (unused: the UNet takes the timestep)"


def test_axera_unet_needs_its_time_rows(model_copy):
    (model_copy / "time_input_txt2img.npy").unlink()
    (model_copy / "manifest.json").unlink()
    report = verify_model(model_copy)
    t2i = _rows(report)["time_input_txt2img"]
    assert t2i.state == "missing" and "time_input_txt2img.npy is required" in t2i.status()
    assert not report.ok and report.manifest is None


def _npu_folder(src, dst):
    """The tiny model with .axmodel files (ONNX bytes) beside the .onnx ones, UNet left as ONNX."""
    shutil.copytree(src, dst)
    for graph in list(dst.rglob("*.onnx")):
        if graph.name != "unet.onnx":  # external weights stay with the ONNX UNet
            shutil.copy(graph, graph.with_suffix(".axmodel"))
    return dst


def test_axmodel_without_pyaxengine_says_what_to_install(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "axengine", None)  # import axengine -> ImportError
    folder = _npu_folder(tiny_model_dir, tmp_path / "npu")
    assert main(["models", "verify", str(folder), "--runtime", "axengine"]) == 1
    out = capsys.readouterr().out
    for name in ("text_encoder", "vae_decoder", "vae_encoder"):
        line = next(x for x in out.splitlines() if x.startswith(name + " "))
        assert ".axmodel" in line and "axengine" in line
        assert line.endswith("needs pyaxengine (install hint below)")
    assert out.count("pip install axengine-<version>-py3-none-any.whl") == 1  # the hint, once
    unet = next(x for x in out.splitlines() if x.startswith("unet "))
    assert unet.endswith("OK")  # still checked: it is ONNX
    report = verify_model(folder, RuntimeOptions(runtime="axengine"))
    needs = _rows(report)["vae_decoder"]
    assert needs.state == "needs pyaxengine" and "github.com/AXERA-TECH/pyaxengine" in needs.problems[0]
    # auto mode without pyaxengine checks the .onnx files of the same folder
    assert verify_model(folder).ok


def test_axmodel_through_pyaxengine_interface(tiny_model_dir, tmp_path, monkeypatch):
    fake_axengine = pytest.importorskip("support.fake_axengine")  # the pyaxengine stand-in of test_runtime
    fake_axengine.install(monkeypatch, providers=("AXCLRTExecutionProvider",))
    folder = _npu_folder(tiny_model_dir, tmp_path / "npu")
    report = verify_model(folder)  # auto: pyaxengine importable -> .axmodel preferred
    rows = _rows(report)
    assert report.ok, report.render()
    assert rows["text_encoder"].file.name == "sd15_text_encoder_sim.axmodel"
    assert rows["text_encoder"].runtime == "axengine/AXCLRT"
    assert rows["text_encoder"].inputs[0].dtype == np.int32  # the NPU's ids are int32: accepted
    assert rows["unet"].runtime == "onnxruntime/CPU"


def test_not_a_folder_says_how_to_get_models(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert main(["models", "verify", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"pi-axera-sd models pull axera --dest {missing}" in err
    assert "pi-axera-sd models export" in err


def test_empty_folder_reports_missing_files(tmp_path):
    report = verify_model(tmp_path)
    rows = _rows(report)
    assert not report.ok
    assert rows["unet"].state == "missing"
    assert rows["tokenizer"].state == "OK"  # no tokenizer/ in the folder: the packaged one serves
    assert rows["vae_encoder"].status() == "absent (optional; img2img disabled)"


def test_verify_resolves_what_serve_resolves_from_the_seed_variables(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    """MODELS_DIR, TEXT_MODEL_DIR and a stale TIME_INPUT_IMG2IMG, as the original unit sets them."""
    text_dir = tmp_path / "text"
    shutil.copytree(tiny_model_dir / "text_encoder", text_dir / "text_encoder")
    monkeypatch.setenv("MODELS_DIR", str(tiny_model_dir))
    monkeypatch.setenv("TEXT_MODEL_DIR", str(text_dir))
    monkeypatch.setenv("TIME_INPUT_IMG2IMG", str(tmp_path / "old" / "time_input_img2img.npy"))
    assert main(["models", "verify", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["component"]: r for r in data["components"]}
    assert rows["text_encoder"]["file"].startswith(str(text_dir))
    assert (
        data["layout"]["kind"].startswith("AXERA") and "TIME_INPUT_IMG2IMG" in data["layout"]["warnings"][0]
    )
    assert main(["models", "verify"]) == 0
    out = capsys.readouterr().out
    assert "warning: TIME_INPUT_IMG2IMG names" in out and "layout: AXERA" in out
