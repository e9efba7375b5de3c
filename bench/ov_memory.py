"""Where OpenVINO's memory goes: resident memory after compiling one model alone, per knob.

    python bench/ov_memory.py [--models DIR] [--only unet text_encoder ...] [--variants ...]

Each measurement runs in a fresh process (so peaks don't mix) that compiles one model file with
one set of settings, then runs one inference with zero inputs. Reported from ``/proc/self/status``:
``RssAnon`` (private memory: what the process really costs) and ``RssFile`` (file pages mapped in,
e.g. memory-mapped weights; the kernel can drop and re-read them) after compiling, after dropping
Python references + ``gc`` + ``malloc_trim``, and the high-water mark after the inference. Cached
variants run twice with the same cache folder; the second (warm) run is the one a restarted
service sees. Prints one JSON line per run and a markdown table.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODELS = {
    "text_encoder": "text_encoder/sd15_text_encoder_sim.onnx",
    "unet_int8": "unet.int8.xml",
    "vae_decoder_int8": "vae_decoder.int8.xml",
    "vae_encoder": "vae_encoder.onnx",
    # FP16-compressed IRs written by bench/ov_fp16.py beside the benchmark folder
    "text_encoder_fp16": "../axera-fp16/text_encoder.fp16.xml",
    "vae_encoder_fp16": "../axera-fp16/vae_encoder.fp16.xml",
}
# name -> (core properties, compile properties, from_read_model, cache, env)
VARIANTS: dict[str, dict] = {
    "base": {},
    "no_mmap": {"core": {"ENABLE_MMAP": False}},
    "read_model": {"read": True},
    "read_model_keep": {"read": True, "keep": True},
    "cache_speed": {"cache": "OPTIMIZE_SPEED"},
    "cache_size": {"cache": "OPTIMIZE_SIZE"},
    "trim": {"trim": True},
    "trim_env": {"env": {"MALLOC_TRIM_THRESHOLD_": "0"}, "trim": True},
    "release": {"release": True},
    "cache_speed_release": {"cache": "OPTIMIZE_SPEED", "release": True},
    "cache_size_release": {"cache": "OPTIMIZE_SIZE", "release": True},
}


def _mem() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024**2, 3)
    return out


def _trim() -> None:
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def child(path: str, spec: dict, cache: str | None) -> dict:
    import openvino as ov

    core = ov.Core()
    if spec.get("core"):
        core.set_property(spec["core"])
    config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
    if cache:
        config["CACHE_DIR"] = cache
        config["CACHE_MODE"] = spec["cache"]
    started = time.perf_counter()
    if spec.get("read"):
        model = core.read_model(path)
        compiled = core.compile_model(model, "CPU", config)
    else:
        model = None
        compiled = core.compile_model(path, "CPU", config)
    row: dict = {"compile_s": round(time.perf_counter() - started, 2), "after_compile": _mem()}
    row["from_cache"] = bool(cache) and bool(compiled.get_property("LOADED_FROM_CACHE"))
    if not spec.get("keep"):
        del model
    gc.collect()
    if spec.get("trim"):
        _trim()
    if spec.get("release"):
        from pi_axera_sd.runtime.ovmemory import release_mapped_files

        folders = [Path(path).parent] + ([Path(cache)] if cache else [])
        row["advised_gb"] = round(release_mapped_files(folders) / 1024**3, 3)
    row["after_release"] = _mem()
    request = compiled.create_infer_request()
    feed = {}
    for i, port in enumerate(compiled.inputs):
        feed[i] = np.zeros(list(port.get_shape()), dtype=port.get_element_type().to_dtype())
    started = time.perf_counter()
    request.infer(feed)
    row["infer_s"] = round(time.perf_counter() - started, 2)
    if spec.get("trim"):
        _trim()
    row["after_infer"] = _mem()
    return row


def run_one(models: Path, name: str, variant: str, cache_root: Path, warm: bool) -> dict:
    spec = VARIANTS[variant]
    cache = str(cache_root / f"{name}-{variant}") if spec.get("cache") else None
    env = {**os.environ, **spec.get("env", {})}
    cmd = [sys.executable, __file__, "--child", str(models / MODELS[name]), variant, cache or ""]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {"model": name, "variant": variant + (" warm" if warm else ""), **row}


def format_table(rows: list[dict]) -> str:
    lines = [
        "| model | variant | compile s | anon / file GB after compile | anon / file GB after release "
        "| anon / file GB after inference | peak RSS GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b, c = r["after_compile"], r["after_release"], r["after_infer"]
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['compile_s']} | {a['RssAnon']:.2f} / {a['RssFile']:.2f} "
            f"| {b['RssAnon']:.2f} / {b['RssFile']:.2f} | {c['RssAnon']:.2f} / {c['RssFile']:.2f} "
            f"| {c['VmHWM']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        path, variant, cache = sys.argv[2], sys.argv[3], sys.argv[4] or None
        print(json.dumps(child(path, VARIANTS[variant], cache)))
        return 0
    from models import cache_root

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=cache_root() / "sd15-random" / "axera")
    ap.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            for variant in args.variants:
                runs = 2 if VARIANTS[variant].get("cache") else 1
                for i in range(runs):
                    row = run_one(args.models, name, variant, Path(tmp), warm=i == 1)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    print("\n" + format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
