"""Interrogation timings for CLIP ViT-B/32's full architecture (random weights) on this machine.

Reports: scoring one image against all 20,101 taxonomy labels (image encode excluded), the image
encode, the cache load at start-up, and the first build of the taxonomy embeddings with batching
(dynamic batch 64, sequences cut after the last EOS: the default ONNX export), batching at the full
77 tokens (a static [64, 77] tower), and without batching (a static [1, 77] tower, the NPU's shape).
The two static variants are timed on a sample of labels and extrapolated, which the output says.

    python bench/clip_bench.py [--root ~/.cache/pi-axera-sd/bench] [--json out.json]

The models are exported once under ``--root`` (about 1.8 GB) and reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pi_axera_sd.config import Settings
from pi_axera_sd.interrogate.layout import MANIFEST
from pi_axera_sd.interrogate.loading import load_interrogator
from pi_axera_sd.interrogate.preprocess import clip_pixels
from pi_axera_sd.interrogate.scoring import cosine_scores, top_indices
from pi_axera_sd.interrogate.taxonomy import load_labels

VARIANTS = {"dynamic": None, "static64": 64, "static1": 1}


def export_models(root: Path) -> dict[str, Path]:
    """ViT-B/32 with random weights (seed 0) in the three text-tower shapes; exported once."""
    folders = {name: root / f"clip-vit-b32-{name}" for name in VARIANTS}
    missing = [name for name, folder in folders.items() if not (folder / MANIFEST).is_file()]
    if missing:
        from pi_axera_sd.modeltools.export_clip import export_clip_model
        from pi_axera_sd.modeltools.random_clip import build_clip_model

        model = build_clip_model("vit-b-32", seed=0)
        for name in missing:
            started = time.perf_counter()
            export_clip_model(
                model,
                folders[name],
                static_text_batch=VARIANTS[name],
                source="random vit-b-32 weights (seed 0)",
            )
            print(f"exported {name} in {time.perf_counter() - started:.1f} s -> {folders[name]}")
    return folders


def settings(folder: Path, cache: Path) -> Settings:
    return Settings(clip_dir=folder, embedding_cache_dir=cache, runtime="onnxruntime")


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def time_sample(folder: Path, cache: Path, labels: list[str], sample: int) -> dict:
    """Seconds to embed the first ``sample`` labels in warm-up-sized steps, extrapolated."""
    interrogator = load_interrogator(settings(folder, cache), warm=False)
    step = interrogator.step_labels
    picked = labels[:sample]
    interrogator.embed_labels(picked[:step])  # first run allocates; not part of the rate
    started = time.perf_counter()
    for start in range(0, len(picked), step):
        interrogator.embed_labels(picked[start : start + step])
    seconds = time.perf_counter() - started
    return {
        "text_batch": interrogator.text_encoder.batch,
        "sample_labels": len(picked),
        "sample_s": round(seconds, 2),
        "ms_per_label": round(1000 * seconds / len(picked), 2),
        "extrapolated_s": round(seconds / len(picked) * len(labels), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path.home() / ".cache/pi-axera-sd/bench")
    parser.add_argument("--sample-static64", type=int, default=1024, help="labels timed for [64, 77]")
    parser.add_argument("--sample-static1", type=int, default=500, help="labels timed for [1, 77]")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    folders = export_models(args.root)
    labels = load_labels()
    results: dict[str, object] = {
        "labels": len(labels),
        "model": "CLIP ViT-B/32 architecture, random weights",
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }

    # First build, batched (the default export): every label, from an empty cache.
    cache = args.root / "cache-dynamic"
    shutil.rmtree(cache, ignore_errors=True)
    started = time.perf_counter()
    interrogator = load_interrogator(settings(folders["dynamic"], cache))
    steps = 0
    while interrogator.warmup_step():
        steps += 1
    build_s = time.perf_counter() - started
    assert interrogator.status().ready
    results["first_build_batched"] = {
        "text_batch": interrogator.text_encoder.batch,
        "warmup_steps": steps,
        "seconds": round(build_s, 1),
        "ms_per_label": round(1000 * build_s / len(labels), 2),
        "encoder_hash_s": round(interrogator.timings["encoder_hash_s"], 2),
    }
    results["first_build_batched_full_length"] = time_sample(
        folders["static64"], args.root / "cache-static64", labels, args.sample_static64
    )
    results["first_build_unbatched"] = time_sample(
        folders["static1"], args.root / "cache-static1", labels, args.sample_static1
    )

    # Start-up with the cache present (file hashes remembered), as the service does it.
    started = time.perf_counter()
    loaded = load_interrogator(settings(folders["dynamic"], cache))
    startup_s = time.perf_counter() - started
    assert loaded.status().ready
    results["startup"] = {
        "load_interrogator_s": round(startup_s, 3),
        "cache_load_ms": round(1000 * loaded.timings["cache_load_s"], 2),
        "encoder_hash_ms": round(1000 * loaded.timings["encoder_hash_s"], 2),
    }

    # Image encode and scoring.
    image = photo(1)
    encoder = loaded.image_encoder
    encoder.encode(image)
    results["image"] = {
        "preprocess_ms": round(median_ms(lambda: clip_pixels(image, encoder.spec), 20), 2),
        "encode_ms_incl_preprocess": round(median_ms(lambda: encoder.encode(image), 20), 1),
    }
    rows = loaded.embeddings
    vector = encoder.encode(image)
    started = time.perf_counter()
    top_indices(cosine_scores(rows, vector), 10, 0.22)
    first_ms = (time.perf_counter() - started) * 1000

    def score() -> None:
        top_indices(cosine_scores(rows, vector), 10, 0.22)

    results["score_all_labels"] = {
        "first_call_ms": round(first_ms, 2),
        "median_ms": round(median_ms(score, 200), 3),
        "rows": list(rows.shape),
        "dtype": str(rows.dtype),
    }

    # Why float32: the score change float16 storage would make.
    half = np.asarray(rows).astype(np.float16).astype(np.float32)
    worst = 0.0
    for seed in range(5):
        v = encoder.encode(photo(seed + 10))
        worst = max(worst, float(np.abs(half @ v - np.asarray(rows) @ v).max()))
    results["float16_max_score_error"] = worst
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
