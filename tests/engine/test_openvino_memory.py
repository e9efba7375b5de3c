"""Memory-mapped model pages are given back once OpenVINO has compiled (runtime/ovmemory.py)."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pi_axera_sd import exitcodes
from pi_axera_sd.config import Settings
from pi_axera_sd.runtime import RuntimeOptions, open_session
from pi_axera_sd.runtime import openvino as ov_runtime
from pi_axera_sd.runtime.ovmemory import read_only_file_mappings, release_mapped_files
from pi_axera_sd.wiring import runtime_options

TOOL = str(Path(sys.executable).with_name("pi-axera-sd"))
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")


def _resident_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if "-" in first and not first.endswith(":"):  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and first == "Rss:":
            total += int(line.split()[1])
    return total


def _ir_model(folder: Path) -> tuple[Path, np.ndarray]:
    """A one-MatMul OpenVINO IR with 4 MiB of FP32 weights in its ``.bin``, and those weights."""
    import openvino as ov
    import openvino.opset13 as ops

    weights = np.random.default_rng(0).standard_normal((512, 2048)).astype(np.float32)
    x = ops.parameter([1, 512], np.float32, name="x")
    model = ov.Model([ops.matmul(x, ops.constant(weights), False, False)], [x], "matmul")
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, folder / "m.xml", compress_to_fp16=False)
    return folder / "m.xml", weights


def test_only_read_only_mappings_inside_the_folders_are_listed(tmp_path):
    maps = tmp_path / "maps"
    models = tmp_path / "models"
    maps.write_text(
        f"1000-3000 r--s 00000000 fe:00 1 {models}/unet.int8.bin\n"
        f"3000-4000 rw-p 00000000 fe:00 1 {models}/unet.int8.bin\n"  # copy-on-write: never touched
        f"4000-5000 r--p 00000000 fe:00 3 {models}/lib.so\n"  # private: may hold its own changes
        f"5000-6000 r--p 00000000 fe:00 2 {tmp_path}/elsewhere/other.bin\n"
        "7000-8000 rw-p 00000000 00:00 0\n"  # anonymous
    )
    found = read_only_file_mappings([models], maps=maps)
    assert found == [(0x1000, 0x3000, f"{models}/unet.int8.bin")]


@linux_only
def test_released_pages_leave_the_process_and_read_back_unchanged(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, 8 * 2**20, dtype=np.uint8).tobytes()
    path = tmp_path / "w" / "weights.bin"
    path.parent.mkdir()
    path.write_bytes(data)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert bytes(mapped[:]) == data  # every page read, so resident
        assert _resident_kb(path) >= 8 * 1024 - 64
        assert release_mapped_files([path.parent]) >= len(data)
        assert _resident_kb(path) == 0
        assert bytes(mapped[:]) == data  # faulted back in from the file, same bytes


@linux_only
@pytest.mark.parametrize("release", [True, False])
def test_open_openvino_releases_the_weight_file_only_when_asked(tmp_path, release):
    xml, weights = _ir_model(tmp_path / "model")
    session = open_session(xml, RuntimeOptions(runtime="openvino", release_mapped=release))
    bin_path = xml.with_suffix(".bin").resolve()
    assert any(p == str(bin_path) for _, _, p in read_only_file_mappings([xml.parent]))  # OpenVINO mmaps it
    assert (_resident_kb(bin_path) == 0) is release
    x = np.random.default_rng(2).standard_normal((1, 512)).astype(np.float32)
    (out,) = session.run({"x": x})
    np.testing.assert_allclose(out, x @ weights, rtol=2e-2, atol=2e-1)  # default precision may be bf16


def test_the_cache_still_works_cold_and_warm_with_release(tmp_path, monkeypatch):
    folders: list[list[Path]] = []
    real = ov_runtime.release_mapped_files
    monkeypatch.setattr(ov_runtime, "release_mapped_files", lambda f: folders.append(list(f)) or real(f))
    xml, _ = _ir_model(tmp_path / "model")
    options = RuntimeOptions(runtime="openvino", cache_dir=tmp_path / "cache")
    x = np.ones((1, 512), np.float32)
    cold = open_session(xml, options)
    warm = open_session(xml, options)
    assert not cold.inner.from_cache and warm.inner.from_cache
    np.testing.assert_array_equal(cold.run({"x": x})[0], warm.run({"x": x})[0])
    # both the model's folder and its cache folder (the imported blob is mapped too) are released
    assert len(folders) == 2
    assert all(f[0] == xml.parent and f[1].parent == tmp_path / "cache" for f in folders)


def test_the_setting_reaches_the_runtime_options(monkeypatch):
    assert runtime_options(Settings()).release_mapped is True
    monkeypatch.setenv("PI_AXERA_SD_OPENVINO_RELEASE_MAPPED", "0")
    assert runtime_options(Settings()).release_mapped is False


def test_a_bad_value_is_one_line_and_exit_2(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PI_AXERA_SD_")}
    run = subprocess.run(
        [TOOL, "serve"],
        env={
            **clean,
            "MODELS_DIR": str(tmp_path / "none"),
            "PI_AXERA_SD_OPENVINO_RELEASE_MAPPED": "sometimes",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == exitcodes.CONFIG, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "PI_AXERA_SD_OPENVINO_RELEASE_MAPPED" in lines[0] and "'sometimes'" in lines[0]
