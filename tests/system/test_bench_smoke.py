"""The benchmark runs end to end (on the tiny architecture) and reports every column it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(out: Path, env: dict[str, str], configs: list[str]) -> subprocess.CompletedProcess:
    """``bench/run.py`` on the tiny architecture, one timed run per configuration."""
    args = ["--size", "tiny", "--runs", "1", "--out", str(out), "--configs", *configs]
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.torch
def test_benchmark_smoke_run(tmp_path):
    env = {"PI_AXERA_SD_BENCH_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    configs = [
        "engine:onnxruntime",
        "engine:openvino:f32",
        "engine:onnxruntime:tiny",
        "bare-openvino",
        "torch",
    ]
    run = run_bench(tmp_path, env, configs)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (report_path,) = tmp_path.glob("bench-*.json")
    report = json.loads(report_path.read_text())
    rows = {(r["mode"], r["config"]): r for r in report["rows"]}
    assert set(rows) == {(m, c) for m in ("txt2img", "img2img") for c in configs}
    ort = rows[("txt2img", "engine:onnxruntime")]
    assert ort["psnr_vs_ort_fp32"] == float("inf") or ort["psnr_vs_ort_fp32"] > 100
    assert rows[("txt2img", "engine:openvino:f32")]["psnr_vs_ort_fp32"] > 40  # same weights, same precision
    assert rows[("txt2img", "torch")]["vs_torch"] == 1.0
    assert rows[("img2img", "bare-openvino")]["vs_bare_openvino"] == 1.0
    for row in rows.values():
        assert row["median_s"] > 0 and row["peak_rss_gb"] > 0
        assert set(row["stages_ms"]) >= {"text", "unet", "vae_decode"}
        assert row["floor_fraction"] > 0 and 0 < row["rss_after_load_gb"] <= row["peak_rss_gb"]
    # floors per precision, measured in the same run
    assert {"fp32", "bf16", "int8"} <= set(report["gemm_rates_gmacs"])
    assert report_path.with_suffix(".md").read_text().startswith("| mode | config |")
    # each target with its measured ratio against the same run's peers
    targets = {t["target"].split(":")[0] for t in report["targets"]}
    assert targets == {"txt2img", "img2img"} and all(t["ratio"] > 0 for t in report["targets"])
    assert report_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 0 <= ort["engine_overhead_pct"] < 100
    assert report["macs"]["unet_per_step"] > 0 and report["macs"]["vae_decoder"] > 0
    assert "| txt2img | engine:onnxruntime |" in run.stdout
    assert report["host_work_ms"]["png_level4"] > 0 and "host work per image" in run.stdout


@pytest.mark.slow
@pytest.mark.torch
def test_deepcache_configurations_report_reuse_against_their_peer(tmp_path):
    env = {"PI_AXERA_SD_BENCH_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    configs = ["engine:onnxruntime", "engine:onnxruntime:tiny", "engine:onnxruntime:tiny:deepcache"]
    run = run_bench(tmp_path, env, configs)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (report_path,) = tmp_path.glob("bench-*.json")
    report = json.loads(report_path.read_text())
    rows = {(r["mode"], r["config"]): r for r in report["rows"]}
    for mode in ("txt2img", "img2img"):
        reuse = rows[(mode, "engine:onnxruntime:tiny:deepcache")]
        assert reuse["reuse_speed_ratio"] > 0
        # against the FP32 tiny image it is the same comparison as against its no-reuse peer
        assert reuse["psnr_vs_no_reuse"] == reuse["psnr_vs_ort_fp32"] < 100  # reuse changed the image
        assert "reuse_speed_ratio" not in rows[(mode, "engine:onnxruntime:tiny")]
    assert report["macs"]["unet_shallow"] < report["macs"]["unet_per_step"]
    tiny_target = next(t for t in report["targets"] if t["target"].startswith("txt2img: tiny"))
    assert tiny_target["config"] in {"engine:onnxruntime:tiny", "engine:onnxruntime:tiny:deepcache"}
    assert "| txt2img | engine:onnxruntime:tiny:deepcache |" in report_path.with_suffix(".md").read_text()
    assert (tmp_path / "cache" / "sd15-random-tiny-deepcache" / "axera" / "unet_shallow.onnx").is_file()


@pytest.mark.slow
@pytest.mark.torch
def test_startup_smoke_run(tmp_path):
    env = {
        "PI_AXERA_SD_BENCH_CACHE": str(tmp_path / "cache"),
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "HOME": str(tmp_path),
    }
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "startup.py"),
            "--size",
            "tiny",
            "--out",
            str(tmp_path),
            "--configs",
            "onnxruntime",
            "openvino",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (report_path,) = tmp_path.glob("startup-*.json")
    rows = {r["config"]: r for r in json.loads(report_path.read_text())["rows"]}
    assert set(rows) == {"onnxruntime", "openvino"}
    for row in rows.values():
        assert row["cold_ready_s"] > 0 and row["warm_ready_s"] > 0
        assert 0 < row["rss_at_ready_gb"] <= row["peak_rss_gb"]
    # the second OpenVINO start imported every model from the cache the first one wrote
    assert rows["openvino"]["warm_from_cache"] and all(rows["openvino"]["warm_from_cache"])
    assert not any(rows["openvino"]["cold_from_cache"])
    assert rows["onnxruntime"]["warm_from_cache"] == []
    assert rows["openvino"]["warm_peak_rss_gb"] > 0
    for row in rows.values():  # the leak check: resident size after each of the warm start's images
        assert len(row["warm_rss_after_images_gb"]) == 5 and all(
            x > 0 for x in row["warm_rss_after_images_gb"]
        )
        assert isinstance(row["rss_growth_per_image_mb"], float)
    assert "| openvino |" in report_path.with_suffix(".md").read_text()


def test_floor_precisions_follow_the_int8_parts_of_a_configuration(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from floors import stage_precisions

    every = stage_precisions("engine:openvino:int8", "CPU/bf16")
    assert every == {"text": "bf16", "vae_encode": "int8", "unet": "int8", "vae_decode": "int8"}
    assert stage_precisions("engine:openvino:int8:floatdec", "CPU/bf16")["vae_decode"] == "bf16"
    only_unet = stage_precisions("engine:openvino:int8unet", "CPU/f32")
    assert only_unet == {"text": "fp32", "vae_encode": "fp32", "unet": "int8", "vae_decode": "fp32"}
