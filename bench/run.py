"""Full-size benchmark: this engine vs diffusers + PyTorch vs OpenVINO, in ONE run on one machine.

    python bench/run.py [--runs 3] [--modes txt2img img2img] [--configs ...]

Builds the random-weight SD1.5 model once (bench/models.py), runs every configuration in its own
process (so peak memory is its own), then prints a table and writes bench/results/<time>.json.
Ratios are against peers measured in this same run; absolute seconds vary between machines/runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from chart import write_chart  # noqa: E402
from floors import config_floor_s  # noqa: E402
from macs import count_macs, measure_gemm_rates  # noqa: E402
from models import ensure_deepcache, ensure_deepcache_int8, ensure_int8, ensure_sd15  # noqa: E402
from targets import evaluate, format_targets  # noqa: E402
from worker import deepcache_interval  # noqa: E402

DEFAULT_CONFIGS = [
    "engine:onnxruntime",
    "engine:openvino",
    "engine:openvino:int8",
    "engine:openvino:int8:floatdec",
    "engine:openvino:int8:floatdec:deepcache4",
    "engine:openvino:int8unet",
    "engine:openvino:int8:tiny",
    "engine:openvino:int8:tiny:deepcache4",
    "engine:openvino:f32",
    "engine:openvino:tiny",
    "engine:onnxruntime:tiny",
    "bare-openvino",
    "torch",
]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def run_config(config: str, base: Path, mode: str, runs: int, tmp: Path) -> dict:
    out = tmp / f"{config.replace(':', '_')}_{mode}.npy"
    cmd = [
        sys.executable,
        str(HERE / "worker.py"),
        config,
        "--base",
        str(base),
        "--mode",
        mode,
        "--runs",
        str(runs),
        "--out",
        str(out),
    ]
    print(f"  {config} {mode} ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"config": config, "mode": mode, "error": proc.stderr[-2000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["image"] = str(out)
    return result


def host_work_ms(base: Path) -> dict[str, float]:
    """Median times of the host-side work around one 512x512 image (PNG, base64, tokenizer)."""
    import base64
    import timeit

    from pi_axera_sd.engine.imageio import encode_png
    from pi_axera_sd.engine.tokenizer import ClipTokenizer

    rng = np.random.default_rng(0)
    # a smooth image with noise compresses like a generated one, not like pure noise
    ramp = np.linspace(0, 255, 512, dtype=np.float32)
    pixels = np.clip(ramp[None, :, None] + rng.normal(0, 12, (512, 512, 3)), 0, 255).astype(np.uint8)
    tok = ClipTokenizer(base / "axera" / "tokenizer")

    def best(fn, n=5) -> float:
        return 1000 * min(timeit.repeat(fn, number=1, repeat=n))

    out = {
        f"png_level{lvl}": best(lambda lvl=lvl: encode_png(pixels, "x", compress_level=lvl))
        for lvl in (1, 4, 6)
    }
    png = encode_png(pixels, "x", compress_level=4)
    out["base64"] = best(lambda: base64.b64encode(png))
    out["tokenize"] = best(lambda: tok.encode("a photograph of a red fox in the snow, highly detailed"))
    return out


def stage_medians(result: dict) -> dict[str, float]:
    names = {k for s in result["samples"] for k in s["stages"]}
    return {k: statistics.median(s["stages"].get(k, 0.0) for s in result["samples"]) for k in sorted(names)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["txt2img", "img2img"])
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument(
        "--size", choices=["full", "tiny"], default="full", help="tiny: a smoke run on test-size models"
    )
    args = ap.parse_args()

    base = ensure_sd15(size=args.size)
    if any("int8" in c for c in args.configs):
        ensure_int8(base)
    if any(deepcache_interval(c) for c in args.configs):
        # every configuration then reads the sibling folder that adds the DeepCache pair and the TAESD
        # encoder, so peers and reuse share one model folder (the base folder is never written)
        base = ensure_deepcache(base)
        if any(deepcache_interval(c) and "int8" in c.split(":") for c in args.configs):
            ensure_deepcache_int8(base)
    axera = base / "axera"
    unet_macs = count_macs(axera / "unet.onnx")
    vae_macs = count_macs(axera / "vae_decoder.onnx")
    enc_macs = count_macs(axera / "vae_encoder.onnx")
    text_macs = count_macs(axera / "text_encoder" / "sd15_text_encoder_sim.onnx")
    tiny_macs = count_macs(axera / "vae_decoder_tiny.onnx")
    optional_macs = {
        key: count_macs(axera / name)
        for key, name in (("unet_shallow", "unet_shallow.onnx"), ("vae_encode_tiny", "vae_encoder_tiny.onnx"))
        if (axera / name).is_file()
    }
    print(
        f"MACs: UNet {unet_macs / 1e9:.0f} G/step, VAE decoder {vae_macs / 1e9:.0f} G, "
        f"VAE encoder {enc_macs / 1e9:.0f} G, text {text_macs / 1e9:.1f} G, "
        f"TAESD decoder {tiny_macs / 1e9:.0f} G"
        + "".join(f", {key} {n / 1e9:.0f} G" for key, n in optional_macs.items())
    )

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            for config in args.configs:
                results.append(run_config(config, base, mode, args.runs, Path(tmp)))
        # quality against the ONNX Runtime FP32 image of the same seed, same noise, same decoder kind;
        # torch draws its own noise, so its image is not comparable pixel by pixel
        for r in results:
            if "error" in r or r["config"] == "torch":
                continue
            tiny = "tiny" in r["config"].split(":")
            ref_config = "engine:onnxruntime:tiny" if tiny else "engine:onnxruntime"
            ref = next(
                (
                    x
                    for x in results
                    if x["config"] == ref_config and x["mode"] == r["mode"] and "error" not in x
                ),
                None,
            )
            if ref is None:
                continue
            r["psnr_vs_ort_fp32"] = psnr(np.load(r["image"]), np.load(ref["image"]))
            probe = Path(r["image"]).with_suffix(".unet.npy")
            if probe.is_file():
                ref_unet = np.load(Path(ref["image"]).with_suffix(".unet.npy"))
                r["unet_rel_error"] = float(
                    np.linalg.norm(np.load(probe) - ref_unet) / np.linalg.norm(ref_unet)
                )
        compare_reuse(results)

    # The floor per precision: each configuration's MACs at the GEMM rates, measured now, of the
    # precisions it runs in (FP32, BF16, INT8).
    rates = measure_gemm_rates()
    print(
        "GEMM rates of this machine (2048^3 MatMul, best of 5), GMAC/s: "
        + ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
    )
    macs = {
        "text": text_macs,
        "vae_encode": enc_macs,
        "unet": unet_macs,
        "vae_decode": vae_macs,
        "vae_decode_tiny": tiny_macs,
        **optional_macs,
    }
    table = []
    for mode in args.modes:
        steps = 4 if mode == "txt2img" else 2
        by = {r["config"]: r for r in results if r["mode"] == mode and "error" not in r}
        torch_ms = by.get("torch", {}).get("median_ms")
        ov_ms = by.get("bare-openvino", {}).get("median_ms")
        for r in [r for r in results if r["mode"] == mode]:
            if "error" in r:
                table.append(
                    {"mode": mode, "config": r["config"], "error": r["error"].strip().splitlines()[-1]}
                )
                continue
            med = r["median_ms"]
            overhead = [s.get("overhead_ms") for s in r["samples"] if "overhead_ms" in s]
            row = {
                "mode": mode,
                "config": r["config"],
                "provider": r["provider"],
                "median_s": med / 1000,
                "stages_ms": stage_medians(r),
                "peak_rss_gb": r["peak_rss_mb"] / 1024,
                "vs_torch": med / torch_ms if torch_ms else None,
                "vs_bare_openvino": med / ov_ms if ov_ms else None,
                "floor_s": (floor := config_floor_s(r["config"], r["provider"], mode, steps, macs, rates)),
                "floor_fraction": floor / (med / 1000),
                "rss_after_load_gb": r.get("rss_after_load_mb", 0.0) / 1024,
                "psnr_vs_ort_fp32": r.get("psnr_vs_ort_fp32"),
                "unet_rel_error": r.get("unet_rel_error"),
                "engine_overhead_pct": 100 * statistics.median(overhead) / med if overhead else None,
                "load_s": r["load_s"],
                **{k: r[k] for k in ("reuse_speed_ratio", "psnr_vs_no_reuse") if k in r},
            }
            table.append(row)

    host = host_work_ms(base)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "size": args.size,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "runs": args.runs,
        "gemm_rates_gmacs": rates,
        "macs": {
            "unet_per_step": unet_macs,
            "vae_decoder": vae_macs,
            "vae_encoder": enc_macs,
            "text_encoder": text_macs,
            "taesd_decoder": tiny_macs,
            **optional_macs,
        },
        "rows": table,
        "targets": (targets := evaluate(table)),
        "host_work_ms": host,
        "raw": [{k: v for k, v in r.items() if k != "image"} for r in results],
    }
    path = args.out / f"bench-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=float))
    markdown = format_table(table) + "\n\n" + format_targets(targets)
    if any("reuse_speed_ratio" in row for row in table):
        markdown += "\n\n" + format_reuse(table)
    print("\n" + markdown)
    path.with_suffix(".md").write_text(markdown + "\n")
    chart = write_chart(table, path.with_suffix(".png"))
    print("\nhost work per image (ms, best of 5): " + ", ".join(f"{k} {v:.1f}" for k, v in host.items()))
    print(f"\nwrote {path}, {path.with_suffix('.md').name}" + (f", {chart.name}" if chart else ""))
    return 1 if any("error" in row for row in table) else 0


def compare_reuse(results: list[dict]) -> None:
    """Each DeepCache configuration against the same configuration without reuse, same mode: its
    time ratio and the PSNR of its image against that configuration's image (same seed, same noise)."""
    for r in results:
        if "error" in r or not deepcache_interval(r["config"]):
            continue
        peer_config = ":".join(p for p in r["config"].split(":") if not p.startswith("deepcache"))
        peer = next(
            (
                x
                for x in results
                if x["config"] == peer_config and x["mode"] == r["mode"] and "error" not in x
            ),
            None,
        )
        if peer is not None:
            r["reuse_speed_ratio"] = r["median_ms"] / peer["median_ms"]
            r["psnr_vs_no_reuse"] = psnr(np.load(r["image"]), np.load(peer["image"]))


def format_reuse(rows: list[dict]) -> str:
    lines = [
        "| mode | DeepCache configuration | x same config without reuse | PSNR dB vs it | UNet ms |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if "reuse_speed_ratio" in r:
            lines.append(
                f"| {r['mode']} | {r['config']} | {r['reuse_speed_ratio']:.2f} | "
                f"{_fmt(r.get('psnr_vs_no_reuse'), '.1f')} | {r['stages_ms'].get('unet', 0):.0f} |"
            )
    return "\n".join(lines)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: list[dict]) -> str:
    head = (
        "mode",
        "config",
        "median s",
        "text",
        "vae enc",
        "unet",
        "vae dec",
        "peak GB",
        "GB/image",
        "x torch",
        "x bare OV",
        "floor %",
        "PSNR dB",
        "UNet rel err",
        "overhead %",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['config']} | error: {r['error']} |")
            continue
        st = r["stages_ms"]
        cells = [
            r["mode"],
            r["config"],
            _fmt(r["median_s"], ".2f"),
            _fmt(st.get("text"), ".0f"),
            _fmt(st.get("vae_encode"), ".0f"),
            _fmt(st.get("unet"), ".0f"),
            _fmt(st.get("vae_decode"), ".0f"),
            _fmt(r["peak_rss_gb"], ".2f"),
            # working memory of one image: the high-water mark above what the loaded models hold
            _fmt(r["peak_rss_gb"] - r["rss_after_load_gb"] if r["rss_after_load_gb"] else None, ".2f"),
            _fmt(r["vs_torch"], ".2f"),
            _fmt(r["vs_bare_openvino"], ".2f"),
            _fmt(100 * r["floor_fraction"], ".0f"),
            _fmt(r["psnr_vs_ort_fp32"], ".1f"),
            _fmt(r["unet_rel_error"], ".2e"),
            _fmt(r["engine_overhead_pct"], ".2f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
