"""FP16-compressed OpenVINO IR of the FP32 components: their error against the FP32 ONNX model.

    python bench/ov_fp16.py [--models DIR] [--out DIR]

Converts ``text_encoder``, ``vae_encoder`` and ``vae_decoder`` once (``openvino.convert_model`` +
``save_model(compress_to_fp16=True)``) into ``--out`` (default: ``axera-fp16`` beside the benchmark
model; the benchmark folder itself is left as it is), then runs each on one fixed input: the FP32
ONNX model at FP32 precision is the reference, and the FP32 ONNX at the device's default precision
and the FP16 IR at the same default are compared with it (PSNR over the reference's value range).
``bench/ov_memory.py --only text_encoder_fp16 ...`` measures their memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SOURCES = {
    "text_encoder": "text_encoder/sd15_text_encoder_sim.onnx",
    "vae_encoder": "vae_encoder.onnx",
    "vae_decoder": "vae_decoder.onnx",
}


def convert(models: Path, out: Path) -> dict[str, Path]:
    import openvino as ov

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, rel in SOURCES.items():
        target = out / f"{name}.fp16.xml"
        if not target.is_file():
            started = time.perf_counter()
            ov.save_model(ov.convert_model(models / rel), target, compress_to_fp16=True)
            print(f"converted {name} in {time.perf_counter() - started:.1f} s", flush=True)
        written[name] = target
    return written


def _inputs(compiled) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(0)
    feed = {}
    for i, port in enumerate(compiled.inputs):
        shape, dtype = list(port.get_shape()), port.get_element_type().to_dtype()
        if np.issubdtype(dtype, np.integer):
            feed[i] = rng.integers(0, 49408, shape).astype(dtype)  # CLIP token ids
        else:
            feed[i] = rng.standard_normal(shape).astype(dtype)
    return feed


def _run(core, path: Path, precision: str | None) -> np.ndarray:
    config = {"INFERENCE_PRECISION_HINT": precision} if precision else {}
    compiled = core.compile_model(str(path), "CPU", config)
    return np.array(compiled.create_infer_request().infer(_inputs(compiled))[0])


def psnr(ref: np.ndarray, other: np.ndarray) -> float:
    span = float(ref.max() - ref.min())
    mse = float(np.mean((ref.astype(np.float64) - other) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(span**2 / mse)


def main() -> int:
    import openvino as ov
    from models import cache_root

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=cache_root() / "sd15-random" / "axera")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or args.models.parent / "axera-fp16"
    fp16 = convert(args.models, out)
    core = ov.Core()
    rows = []
    for name, rel in SOURCES.items():
        ref = _run(core, args.models / rel, "f32")
        row = {
            "component": name,
            "onnx_fp32_file_mb": round((args.models / rel).stat().st_size / 2**20),
            "fp16_ir_mb": round(fp16[name].with_suffix(".bin").stat().st_size / 2**20),
            "psnr_onnx_default_db": round(psnr(ref, _run(core, args.models / rel, None)), 1),
            "psnr_fp16_ir_default_db": round(psnr(ref, _run(core, fp16[name], None)), 1),
            "psnr_fp16_ir_f32_db": round(psnr(ref, _run(core, fp16[name], "f32")), 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(
        "\n| component | ONNX FP32 MB | FP16 IR MB | PSNR ONNX, default precision | PSNR FP16 IR, default "
        "| PSNR FP16 IR, f32 |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['component']} | {r['onnx_fp32_file_mb']} | {r['fp16_ir_mb']} "
            f"| {r['psnr_onnx_default_db']} dB "
            f"| {r['psnr_fp16_ir_default_db']} dB | {r['psnr_fp16_ir_f32_db']} dB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
