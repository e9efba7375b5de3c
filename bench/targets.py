"""The speed issue's targets, read from a benchmark report: each with its measured ratio, met or not.

python bench/targets.py bench/results/bench-<time>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIN_PSNR_DB = 30.0  # "full quality": PSNR against the FP32 image of the same seed


def _best_full_vae(rows: list[dict], mode: str) -> dict | None:
    """The fastest engine configuration with the full VAE decoder at full quality."""
    ok = [
        r
        for r in rows
        if r["mode"] == mode
        and "error" not in r
        and r["config"].startswith("engine:")
        and "tiny" not in r["config"].split(":")
        and (r.get("psnr_vs_ort_fp32") or 0) >= MIN_PSNR_DB
    ]
    return min(ok, key=lambda r: r["median_s"], default=None)


def evaluate(rows: list[dict]) -> list[dict]:
    found = []
    for mode in ("txt2img", "img2img"):
        by = {r["config"]: r for r in rows if r["mode"] == mode and "error" not in r}
        best = _best_full_vae(rows, mode)
        bare = by.get("bare-openvino")
        if best and bare:
            ratio = best["median_s"] / bare["median_s"]
            found.append(
                {
                    "target": f"{mode}: best full-VAE config (>= {MIN_PSNR_DB:.0f} dB) <= 0.8x bare OpenVINO",
                    "config": best["config"],
                    "ratio": ratio,
                    "psnr_db": best["psnr_vs_ort_fp32"],
                    "met": ratio <= 0.8,
                }
            )
        tiny = min(
            (r for c, r in by.items() if c.startswith("engine:") and "tiny" in c.split(":")),
            key=lambda r: r["median_s"],
            default=None,
        )
        if tiny and best:
            ratio = tiny["median_s"] / best["median_s"]
            found.append(
                {
                    "target": f"{mode}: tiny-VAE mode <= 0.5x the best full-VAE time",
                    "config": tiny["config"],
                    "ratio": ratio,
                    "psnr_db": tiny.get("psnr_vs_ort_fp32"),  # against the FP32 tiny-VAE image
                    "met": ratio <= 0.5,
                }
            )
    return found


def format_targets(found: list[dict]) -> str:
    lines = ["| target | configuration | ratio | PSNR dB | met |", "|---|---|---|---|---|"]
    for t in found:
        psnr = "-" if t["psnr_db"] is None else f"{t['psnr_db']:.1f}"
        met = "yes" if t["met"] else "no"
        lines.append(f"| {t['target']} | {t['config']} | {t['ratio']:.2f} | {psnr} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    report = json.loads(Path(sys.argv[1]).read_text())
    print(format_targets(evaluate(report["rows"])))
