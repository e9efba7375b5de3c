"""``pi-axera-sd models pull`` against a local server that speaks the hub's file API.

Pulls run the real command in a subprocess with ``HF_ENDPOINT`` in its environment (huggingface_hub
reads it at import), so these tests also prove the installed command honours it.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pi_axera_sd.engine.layout import find_model, missing_models_hint, resolve_layout
from pi_axera_sd.modeltools.hub import (
    STATE_FILE,
    PullError,
    display_url,
    place_model,
    resolve_spec,
)
from support.hubserver import FakeHub

TOKEN = "hf_good_token"


@pytest.fixture
def hub():
    with FakeHub(tokens=(TOKEN,)) as server:
        yield server


@pytest.fixture
def env(hub, tmp_path):
    """The environment of a user whose HF_ENDPOINT is the local hub, with a fresh cache."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {
        **clean,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def pull(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "pi_axera_sd", "models", "pull", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def assert_one_line_error(run):
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, run.stderr
    return errors[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- end to end -----------------------------------------------------------------------------------


def test_pull_verify_load(hub, env, tiny_model_dir, tmp_path):
    """The model lives in a subfolder of the repo, as in AXERA's; it lands at --dest and loads."""
    repo = hub.add_folder("tests/tiny-sd", tiny_model_dir, prefix="sd15/")
    dest = tmp_path / "models"
    run = pull(env, "tests/tiny-sd", "--dest", dest)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert f"from {hub.endpoint}" in out and "(folder 'sd15' of the repo)" in out
    assert f"model folder: {dest}" in out
    assert "hub checksums: " in out and "files match (sha256 for LFS files, git blob id for others)" in out
    assert "files, sizes and sha256 match" in out
    assert f"pi-axera-sd models verify {dest}" in out and f"pi-axera-sd serve --models {dest}" in out

    # every model file, byte for byte, hard-linked into the cache (no second copy)
    for rel, data in repo.files.items():
        if rel.startswith("sd15/"):
            placed = dest / rel.removeprefix("sd15/")
            assert placed.read_bytes() == data, rel
            assert placed.stat().st_nlink >= 2 and not placed.is_symlink()
    assert not (dest / "README.md").exists()  # only the model folder is placed
    assert (dest / STATE_FILE).is_file()

    # what huggingface_hub asked for: model info, the tree, HEAD /resolve; LFS bytes from the "CDN"
    assert hub.requests("GET", "/api/models/tests/tiny-sd/revision/main")
    assert hub.requests("GET", f"/api/models/tests/tiny-sd/tree/{repo.commit}")
    assert hub.requests("HEAD", f"/tests/tiny-sd/resolve/{repo.commit}/sd15/unet.onnx")
    assert hub.requests("GET", "/cdn/tests/tiny-sd/", server="cdn")

    verify = subprocess.run(
        [sys.executable, "-m", "pi_axera_sd", "models", "verify", str(dest)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.rstrip().endswith("result: OK")

    from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline

    pipeline = Pipeline.load(resolve_layout(dest))
    assert {"text_encoder", "unet", "vae_decoder", "vae_encoder"} <= set(pipeline.sessions)
    assert pipeline.generate(GenerationParams("a fox", seed=1)).pixels.shape == (128, 128, 3)

    # pulling again: nothing is downloaded, the placed files are kept
    gets = len(hub.requests("GET", server="cdn"))
    again = pull(env, "tests/tiny-sd", "--dest", dest, "-q")
    assert again.returncode == 0, again.stderr
    assert len(hub.requests("GET", server="cdn")) == gets
    assert "unet.onnx.data" in again.stdout and "kept" in again.stdout


def test_npu_preset_fetches_only_npu_files(hub, env, tiny_model_dir, tmp_path):
    files = {
        f"models/{p.relative_to(tiny_model_dir).as_posix()}": p.read_bytes()
        for p in tiny_model_dir.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    for rel in [r for r in files if r.endswith(".onnx")]:
        files[rel.removesuffix(".onnx") + ".axmodel"] = files[rel]  # stand-ins for the compiled graphs
    files["assets/demo.png"] = b"\x89PNG not needed"
    hub.add_repo("AXERA-TECH/lcm-lora-sdv1-5", files)
    dest = tmp_path / "npu-models"
    run = pull(env, "npu", "--dest", dest)
    assert run.returncode == 0, run.stderr
    fetched = {r.path.split("/resolve/", 1)[1].split("/", 1)[1] for r in hub.requests("HEAD", "/resolve/")}
    assert fetched and all(f.endswith((".axmodel", ".npy", ".json", ".txt")) for f in fetched), fetched
    assert (dest / "unet.axmodel").is_file() and not (dest / "unet.onnx").exists()
    assert "pyaxengine, which is not installed here" in run.stdout
    assert "manifest.json: none in this model" in run.stdout

    verify = subprocess.run(
        [sys.executable, "-m", "pi_axera_sd", "models", "verify", str(dest)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 1
    unet = next(line for line in verify.stdout.splitlines() if line.startswith("unet "))
    assert "unet.axmodel" in unet and unet.endswith("needs pyaxengine (install hint below)")


def test_resolution_variants_are_listed_then_one_is_fetched_by_flag(hub, env, tiny_model_dir, tmp_path):
    """A sibling repo holds several sizes (models/, models_320x320/): pull names them and fetches
    only the chosen folder's board files, never the other variants."""
    files = {}
    for folder in ("models", "models_320x320"):
        for p in tiny_model_dir.rglob("*"):
            if p.is_file() and p.name != "manifest.json":
                rel = p.relative_to(tiny_model_dir).as_posix()
                files[
                    f"{folder}/{rel.removesuffix('.onnx') + '.axmodel' if rel.endswith('.onnx') else rel}"
                ] = p.read_bytes()
    hub.add_repo("tests/lcm-variants", files)
    dest = tmp_path / "models"
    listed = pull(env, "tests/lcm-variants", "--dest", dest)
    line = assert_one_line_error(listed)
    assert "models (512x512), models_320x320 (320x320)" in line
    assert "--resolution 512x512 or --resolution 320x320" in line
    assert not hub.requests("HEAD", "/resolve/")  # nothing was downloaded to find that out

    run = pull(env, "tests/lcm-variants", "--dest", dest, "--resolution", "320x320", "-q")
    assert run.returncode == 0, run.stderr
    fetched = {r.path.split("/resolve/", 1)[1].split("/", 1)[1] for r in hub.requests("HEAD", "/resolve/")}
    assert fetched and all(f.startswith("models_320x320/") for f in fetched), fetched
    assert "(folder 'models_320x320' of the repo)" in run.stdout
    assert (dest / "unet.axmodel").is_file()


# ---- resume and integrity -------------------------------------------------------------------------


def test_dropped_connection_resumes_with_a_range_request(hub, env, tiny_model_dir, tmp_path):
    # huggingface_hub keeps whole 10 MiB chunks of a cut download: a bigger file shows the resume
    big = np.random.default_rng(0).integers(0, 256, 16 * 1024 * 1024, dtype=np.uint8).tobytes()
    repo = hub.add_folder("tests/big", tiny_model_dir, drop_once={"extra/big.bin"}, drop_fraction=0.75)
    repo.files["extra/big.bin"] = big
    dest = tmp_path / "models"
    run = pull(env, "tests/big", "--dest", dest)
    assert run.returncode == 0, run.stderr
    assert "resume" in run.stderr.lower()
    sha = hashlib.sha256(big).hexdigest()
    gets = hub.requests("GET", f"/cdn/tests/big/{sha}", server="cdn")
    ranges = [r.headers.get("range") for r in gets]
    assert len(ranges) == 2 and ranges[0] is None, ranges
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", ranges[1]).group(1))  # what was kept: 10 MiB chunks
    assert 0 < resumed_at < len(big)
    assert sha256(dest / "extra/big.bin") == sha


def test_rerun_after_a_failed_file_fetches_only_what_is_missing(hub, env, tiny_model_dir, tmp_path):
    repo = hub.add_folder("tests/flaky", tiny_model_dir, fail={"vae_encoder.onnx"})
    dest = tmp_path / "models"
    line = assert_one_line_error(pull(env, "tests/flaky", "--dest", dest, "-q"))
    assert "answered 500 for tests/flaky" in line
    assert not (dest / "unet.onnx").exists()  # nothing placed from a failed pull
    before = len(hub.requests("GET", server="cdn"))

    repo.fail.clear()
    run = pull(env, "tests/flaky", "--dest", dest, "-q")
    assert run.returncode == 0, run.stderr
    second = [r.path for r in hub.requests("GET", server="cdn")][before:]
    encoder_sha = hashlib.sha256(repo.files["vae_encoder.onnx"]).hexdigest()
    assert second == [f"/cdn/tests/flaky/{encoder_sha}"]  # the finished files were not fetched again


def test_corrupted_download_fails_the_checksum_and_is_fetched_again(hub, env, tiny_model_dir, tmp_path):
    repo = hub.add_folder("tests/corrupt", tiny_model_dir, corrupt={"vae_decoder.onnx"})
    dest = tmp_path / "models"
    line = assert_one_line_error(pull(env, "tests/corrupt", "--dest", dest, "-q"))
    assert "integrity check failed for 1 file(s) of tests/corrupt: vae_decoder.onnx sha256" in line
    assert "run the same command again" in line
    assert not (dest / "vae_decoder.onnx").exists()

    repo.corrupt.clear()
    run = pull(env, "tests/corrupt", "--dest", dest, "-q")
    assert run.returncode == 0, run.stderr
    assert sha256(dest / "vae_decoder.onnx") == hashlib.sha256(repo.files["vae_decoder.onnx"]).hexdigest()


def test_repo_files_that_differ_from_their_manifest(hub, env, tiny_model_dir, tmp_path):
    """The hub's own checksums agree (the publisher uploaded a bad file): manifest.json catches it."""
    repo = hub.add_folder("tests/bad-upload", tiny_model_dir)
    data = bytearray(repo.files["unet.onnx.data"])
    data[100] ^= 0x01
    repo.files["unet.onnx.data"] = bytes(data)
    dest = tmp_path / "models"
    line = assert_one_line_error(pull(env, "tests/bad-upload", "--dest", dest, "-q"))
    assert "tests/bad-upload: files differ from its manifest.json: unet.onnx.data sha256" in line
    assert not (dest / "unet.onnx").exists()


# ---- failures -------------------------------------------------------------------------------------


def test_incomplete_repo_names_the_missing_file_without_a_pull_hint(hub, env, tiny_model_dir, tmp_path):
    """Running 'pull' again would not help: the message lists what is missing, not where to pull from."""
    repo = hub.add_folder("tests/no-decoder", tiny_model_dir)
    for name in ("vae_decoder.onnx", "manifest.json"):
        del repo.files[name]
    dest = tmp_path / "models"
    line = assert_one_line_error(pull(env, "tests/no-decoder", "--dest", dest, "-q"))
    assert "but it is not a complete model: model files missing in" in line
    assert "VAE decoder" in line and "vae_decoder" in line
    assert "models pull" not in line


def test_pull_guards_every_component_file_of_the_contract():
    """The guarded names come from the model contract: every component, the optional TAESD included."""
    from pi_axera_sd.engine.contract import AXERA_STEMS, DIFFUSERS_COMPONENTS, TIME_INPUT_FILES
    from pi_axera_sd.modeltools.hub import COMPONENT_FILES

    for stem in AXERA_STEMS.values():
        assert {f"{stem}.onnx", f"{stem}.axmodel"} <= set(COMPONENT_FILES), stem
    assert "vae_decoder_tiny.onnx" in COMPONENT_FILES and "unet.onnx.data" in COMPONENT_FILES
    assert set(TIME_INPUT_FILES.values()) <= set(COMPONENT_FILES)
    for component in DIFFUSERS_COMPONENTS:
        assert f"{component}/model.onnx" in COMPONENT_FILES
        assert f"{component}/openvino_model.xml" in COMPONENT_FILES


def test_pull_refuses_to_leave_another_models_tiny_decoder(hub, env, tiny_model_dir, tmp_path):
    """A TAESD decoder in --dest from another model would be loaded with the pulled one: refused."""
    repo = hub.add_folder("tests/no-taesd", tiny_model_dir)
    for name in ("vae_decoder_tiny.onnx", "manifest.json"):
        del repo.files[name]
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "vae_decoder_tiny.onnx").write_bytes(b"another model's TAESD decoder")
    line = assert_one_line_error(pull(env, "tests/no-taesd", "--dest", dest, "-q"))
    assert "already holds files of another model (vae_decoder_tiny.onnx)" in line and "--force" in line
    assert (dest / "vae_decoder_tiny.onnx").read_bytes() == b"another model's TAESD decoder"
    assert not (dest / "unet.onnx").exists()


def test_unknown_repo(hub, env, tmp_path):
    line = assert_one_line_error(pull(env, "nobody/nothing", "--dest", tmp_path / "m"))
    assert line == (
        f"error: repository nobody/nothing not found on {hub.endpoint} "
        "(check the name; a private repo needs --token or HF_TOKEN)"
    )


def test_unknown_preset_name(env, tmp_path):
    line = assert_one_line_error(pull(env, "axerra", "--dest", tmp_path / "m"))
    assert "'axerra' is neither a preset (axera, npu" in line


def test_gated_repo_needs_a_token_that_is_never_shown(hub, env, tiny_model_dir, tmp_path):
    hub.add_folder("tests/gated", tiny_model_dir, gated=True)
    line = assert_one_line_error(pull(env, "tests/gated", "--dest", tmp_path / "m", "-q"))
    assert line.startswith("error: tests/gated is gated: accept its conditions at ")
    assert "--token or the HF_TOKEN environment variable" in line

    wrong = pull({**env, "HF_TOKEN": "hf_wrong_secret"}, "tests/gated", "--dest", tmp_path / "m", "-q")
    assert "is gated" in assert_one_line_error(wrong)
    assert "hf_wrong_secret" not in wrong.stdout + wrong.stderr

    run = pull(env, "tests/gated", "--dest", tmp_path / "m", "--token", TOKEN)
    assert run.returncode == 0, run.stderr
    assert TOKEN not in run.stdout + run.stderr
    hub_heads = hub.requests("HEAD", "/tests/gated/resolve/")
    assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub_heads)
    # the token stays on the hub: the redirected downloads went to the CDN without it
    cdn = hub.requests("GET", "/cdn/tests/gated/", server="cdn")
    assert cdn and not any("authorization" in r.headers for r in cdn)


def test_unreachable_hub(env, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = {**env, "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    line = assert_one_line_error(pull(dead, "tests/tiny-sd", "--dest", tmp_path / "m"))
    assert line.startswith(f"error: cannot reach http://127.0.0.1:{port} (")
    assert "HF_HUB_OFFLINE=1 to use the local cache" in line


def test_offline_mode_uses_the_cache_only(hub, env, tiny_model_dir, tmp_path):
    hub.add_folder("tests/tiny-sd", tiny_model_dir)
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    line = assert_one_line_error(pull(offline, "tests/tiny-sd", "--dest", tmp_path / "a"))
    assert (
        "offline mode (HF_HUB_OFFLINE=1 or --offline): tests/tiny-sd (main) is not in the local cache" in line
    )
    assert not hub.requests()

    assert pull(env, "tests/tiny-sd", "--dest", tmp_path / "a", "-q").returncode == 0
    seen = len(hub.requests())
    run = pull(offline, "tests/tiny-sd", "--dest", tmp_path / "b")
    assert run.returncode == 0, run.stderr
    assert "from the local cache only (offline)" in run.stdout
    assert "hub checksums: not re-checked against the hub (offline)" in run.stdout
    assert "files, sizes and sha256 match" in run.stdout  # the manifest is still checked
    assert len(hub.requests()) == seen  # not one request
    assert resolve_layout(tmp_path / "b").unet.is_file()


# ---- units: presets, model folder, placing --------------------------------------------------------


def test_presets_and_repo_ids():
    axera = resolve_spec("axera")
    assert axera.repo_id == "AXERA-TECH/lcm-lora-sdv1-5" and "*.axmodel" in axera.allow_patterns
    assert resolve_spec("NPU") is axera and resolve_spec("ax650n") is axera
    assert resolve_spec("AXERA-TECH/lcm-lora-sdv1-5") is axera  # the repo id is the preset too
    own = resolve_spec("someone/their-sd15")
    assert own.repo_id == "someone/their-sd15" and own.allow_patterns is None
    with pytest.raises(PullError, match="neither a preset"):
        resolve_spec("no-such-thing")


def test_model_folder_is_found_where_the_unet_is(tmp_path):
    for rel in ("README.md", "models/unet.axmodel", "models/text_encoder/x.axmodel", "old/v0/unet.onnx"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert find_model(tmp_path) == ["models", "old/v0"]
    (tmp_path / "unet.onnx").write_bytes(b"x")
    assert find_model(tmp_path)[0] == ""


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_place_model_replaces_its_own_files_and_guards_others(tmp_path):
    v1 = _tree(tmp_path / "v1", {"unet.onnx": b"u1", "old.npy": b"o", "tokenizer/vocab.json": b"{}"})
    v2 = _tree(tmp_path / "v2", {"unet.onnx": b"u2", "tokenizer/vocab.json": b"{}"})
    dest = tmp_path / "dest"
    dest.mkdir()
    files, how, removed = place_model(v1, dest, meta={"commit": "a"})
    assert [f for f, _ in files] == ["old.npy", "tokenizer/vocab.json", "unet.onnx"]
    assert set(how.values()) == {"hardlink"} and (dest / "unet.onnx").samefile(v1 / "unet.onnx")

    _, how, removed = place_model(v2, dest, meta={"commit": "b"})  # an update of the same pull
    assert (dest / "unet.onnx").read_bytes() == b"u2" and removed == ["old.npy"]
    assert not (dest / "old.npy").exists()

    _, how, _ = place_model(v2, dest, mode="symlink", meta={"commit": "b"})
    assert (dest / "unet.onnx").is_symlink() and set(how.values()) == {"symlink"}
    _, how, _ = place_model(v2, dest, mode="copy", meta={"commit": "b"})
    assert not (dest / "unet.onnx").is_symlink() and not (dest / "unet.onnx").samefile(v2 / "unet.onnx")
    _, how, _ = place_model(v2, dest, mode="copy", meta={"commit": "b"})
    assert set(how.values()) == {"kept"}

    # a folder holding someone else's model is not overwritten without --force
    other = _tree(tmp_path / "other", {"unet.onnx": b"mine", "vae_decoder.onnx": b"mine"})
    with pytest.raises(
        PullError, match=r"already holds files of another model \(unet.onnx, vae_decoder.onnx\)"
    ):
        place_model(v2, other)
    assert (other / "unet.onnx").read_bytes() == b"mine"
    place_model(v2, other, force=True)
    assert (other / "unet.onnx").read_bytes() == b"u2" and (
        other / "vae_decoder.onnx"
    ).read_bytes() == b"mine"


def test_endpoint_credentials_are_not_shown():
    assert display_url("https://user:secret@mirror.example:8443/hub") == "https://mirror.example:8443/hub"
    assert display_url("https://huggingface.co") == "https://huggingface.co"


def test_hint_names_the_exact_commands(tmp_path):
    hint = missing_models_hint(tmp_path / "m")
    assert f"pi-axera-sd models pull axera --dest {tmp_path / 'm'}" in hint
    assert f"pi-axera-sd models verify {tmp_path / 'm'}" in hint


def test_pull_help_lists_presets_and_environment(capsys):
    from pi_axera_sd.cli import main

    with pytest.raises(SystemExit):
        main(["models", "pull", "--help"])
    text = capsys.readouterr().out
    assert "NAME-OR-REPO" in text and "AXERA-TECH/lcm-lora-sdv1-5" in text
    for flag in ("--revision", "--dest", "--include", "--token", "--offline", "--link"):
        assert flag in text
    assert "HF_ENDPOINT" in text and "HF_HUB_OFFLINE=1" in text


def test_the_hub_client_logs_one_retry_line_once_each(capfd, monkeypatch):
    """huggingface_hub's own retry loop (the real one) against a dead port: with the service's log set-up
    its records print once each (its own stream handler is removed), and of its retries only the first."""
    import logging

    from huggingface_hub import constants
    from huggingface_hub.utils import http_backoff

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs offline; this test must not

    from pi_axera_sd.modeltools.hub import is_transport_error, quiet_hub_client_logs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/api/models/x"
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    try:
        quiet_hub_client_logs()
        with pytest.raises(Exception) as failed:
            http_backoff("GET", dead, max_retries=3, base_wait_time=0.01, max_wait_time=0.02)
    finally:
        root.removeHandler(handler)
    assert is_transport_error(failed.value)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "thrown while requesting GET" in lines[0] and "further retries are not logged" in lines[0]
