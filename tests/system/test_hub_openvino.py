"""``models pull openvino`` (the CPU presets) against the local hub server holding the tiny LCM model
in the diffusers/optimum OpenVINO layout, under the real repo's name."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_hub import assert_one_line_error, pull

from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
from pi_axera_sd.modeltools.hub import PRESETS, resolve_spec
from support.hubserver import FakeHub, hub_env

INT8_REPO = "OpenVINO/LCM_Dreamshaper_v7-int8-ov"
FP16_REPO = "OpenVINO/LCM_Dreamshaper_v7-fp16-ov"
# files such repos also hold that the engine never reads
DECOYS = {
    "README.md": b"# LCM Dreamshaper v7 (test stand-in)\n",
    "unet/model.onnx": b"not read",  # an ONNX copy beside the IR
    "text_encoder/diffusion_pytorch_model.safetensors": b"not read",
    "feature_extractor/preprocessor_config.json": b"{}",
}


@pytest.fixture
def hub():
    with FakeHub() as server:
        yield server


@pytest.fixture
def env(hub, tmp_path):
    return hub_env(hub.endpoint, tmp_path)


def openvino_repo_files(folder: Path, pad_unet_to: int = 0) -> dict[str, bytes]:
    """The tiny model's files as a hub repo; ``pad_unet_to`` grows the UNet weights (OpenVINO
    ignores bytes past the last constant) so a download spans several of the client's chunks."""
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }
    bin_name = "unet/openvino_model.bin"
    if pad_unet_to > len(files[bin_name]):
        pad = np.random.default_rng(0).integers(0, 256, pad_unet_to - len(files[bin_name]), dtype=np.uint8)
        files[bin_name] += pad.tobytes()
    return {**files, **DECOYS}


def test_cpu_presets_name_the_openvino_repos():
    assert resolve_spec("openvino").repo_id == INT8_REPO
    assert resolve_spec("cpu") is PRESETS["openvino"] and resolve_spec(INT8_REPO) is PRESETS["openvino"]
    assert resolve_spec("openvino-fp16").repo_id == FP16_REPO


@pytest.mark.parametrize(("preset", "repo_id"), [("openvino", INT8_REPO), ("openvino-fp16", FP16_REPO)])
def test_pull_openvino_fetches_only_what_the_engine_reads_and_it_generates(
    hub, env, tiny_optimum_ov_dir, tmp_path, preset, repo_id
):
    hub.add_repo(repo_id, openvino_repo_files(tiny_optimum_ov_dir))
    dest = tmp_path / "models"
    run = pull(env, preset, "--dest", dest)
    assert run.returncode == 0, run.stderr
    fetched = {r.path.split("/resolve/", 1)[1].split("/", 1)[1] for r in hub.requests("HEAD", "/resolve/")}
    assert fetched and not fetched & set(DECOYS), fetched
    assert (
        "unet/openvino_model.bin" in fetched and "tokenizer/tokenizer.json" in fetched
    )  # as optimum writes it today
    assert "(the repo root)" in run.stdout and "files match (sha256 for LFS files" in run.stdout

    verify = subprocess.run(
        [sys.executable, "-m", "pi_axera_sd", "models", "verify", str(dest)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    engine = Pipeline.load(resolve_layout(dest))
    assert engine.unet.runtime == "openvino"
    assert engine.generate(GenerationParams(prompt="a red fox", seed=3)).pixels.std() > 5


def test_pull_openvino_checksum_mismatch_then_a_clean_rerun(hub, env, tiny_optimum_ov_dir, tmp_path):
    repo = hub.add_repo(
        INT8_REPO, openvino_repo_files(tiny_optimum_ov_dir), corrupt={"unet/openvino_model.bin"}
    )
    dest = tmp_path / "models"
    line = assert_one_line_error(pull(env, "openvino", "--dest", dest, "-q"))
    assert f"integrity check failed for 1 file(s) of {INT8_REPO}: unet/openvino_model.bin sha256" in line
    assert not (dest / "unet").exists()  # nothing placed

    repo.corrupt.clear()
    assert pull(env, "openvino", "--dest", dest, "-q").returncode == 0
    good = hashlib.sha256(repo.files["unet/openvino_model.bin"]).hexdigest()
    assert hashlib.sha256((dest / "unet/openvino_model.bin").read_bytes()).hexdigest() == good


def test_pull_openvino_offline_without_a_cache(env, tmp_path):
    line = assert_one_line_error(pull({**env, "HF_HUB_OFFLINE": "1"}, "cpu", "--dest", tmp_path / "m"))
    assert (
        f"offline mode (HF_HUB_OFFLINE=1 or --offline): {INT8_REPO} (main) is not in the local cache" in line
    )
