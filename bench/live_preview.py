"""What live previews cost an image: ``pipeline.generate`` with and without the preview hook.

The hook runs on the inference lane at every N-th step boundary (A1111's
``show_progress_every_n_steps``, default 1 here), so its time adds to the image's. Sides: "off";
"linear" (the latent->RGB map); "tiny" (the tiny VAE at every preview, whatever it costs); "auto"
(the service's default: the tiny VAE only while it fits the 5 % budget, else the linear map). The PNG of the
preview is made later, on a host thread, only when ``/sdapi/v1/progress`` is read; it is timed
separately. The sides alternate in blocks so drifting machine load affects all alike.

    python bench/live_preview.py [--models DIR] [-n 30] [--every 1] [--json out.json]

Without ``--models`` the tiny random SD1.5-shaped model with a TAESD decoder is built once (see
``bench/models.py``); the target is a ratio <= 1.05 on the model that is served.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import ensure_sd15

from pi_axera_sd.engine.layout import resolve_layout
from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
from pi_axera_sd.server.core.live_preview import CHEAP_TYPE, COST_BUDGET, LivePreview

PROMPT = "a photograph of a red fox in the snow, highly detailed"
# name -> (show_progress_type, cost budget); "auto" is the service's default behaviour.
SIDES = {
    "off": (None, None),
    "linear": (CHEAP_TYPE, None),
    "tiny": ("TAESD", None),
    "auto": ("TAESD", COST_BUDGET),
}


def time_side(
    pipeline: Pipeline, side: tuple, every: int, seeds: range, keep: dict
) -> list[tuple[float, float]]:
    """(image ms, ms spent inside the preview hook) per image with one side's hook; ``keep`` holds
    each side's LivePreview so its running cost estimates persist across images, as in the service.
    The hook's own time is the direct measure: it does not drift with other load on the machine."""
    kind, budget = side
    out = []
    for seed in seeds:
        spent = [0.0]
        hook = None
        if kind is not None:
            if side not in keep:
                options = {"show_progress_type": kind, "show_progress_every_n_steps": every}
                keep[side] = LivePreview(lambda options=options: options, budget=budget)
            inner = keep[side].hook(pipeline, f"job-{seed}")

            def hook(done, total, latent, inner=inner, spent=spent):
                t0 = time.perf_counter()
                inner(done, total, latent)
                spent[0] += time.perf_counter() - t0

        start = time.perf_counter()
        pipeline.generate(GenerationParams(PROMPT, seed), on_latent=hook)
        out.append(((time.perf_counter() - start) * 1000.0, spent[0] * 1000.0))
    return out


def encode_ms(pipeline: Pipeline, kind: str, runs: int = 10) -> float:
    preview = LivePreview(lambda: {"show_progress_type": kind}, budget=None)
    pipeline.generate(GenerationParams(PROMPT, 0), on_latent=preview.hook(pipeline, "job"))
    frame = preview.frame_for("job")
    assert frame is not None
    times = []
    for step in range(runs):
        fresh = type(frame)(frame.job_id, frame.step + step + 1, frame.pixels)  # defeat the PNG cache
        start = time.perf_counter()
        preview.encoded(fresh)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="model folder (default: the tiny random one)")
    parser.add_argument("-n", type=int, default=30, help="timed images per side")
    parser.add_argument("--block", type=int, default=5, help="images per side before switching")
    parser.add_argument("--every", type=int, default=1, help="show_progress_every_n_steps")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    models = args.models or ensure_sd15(size="tiny") / "axera"
    pipeline = Pipeline.load(resolve_layout(models))
    has_tiny = "tiny" in pipeline.vae_choices
    sides = {name: side for name, side in SIDES.items() if has_tiny or name not in ("tiny", "auto")}
    keep: dict = {}
    for side in sides.values():  # warm-up: sessions, text cache, allocator, the tiny-VAE probe
        time_side(pipeline, side, args.every, range(2), keep)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for first in range(0, args.n, args.block):
        seeds = range(first, min(args.n, first + args.block))
        for name, side in sides.items():
            times[name].extend(time_side(pipeline, side, args.every, seeds, keep))
    off = statistics.median(image for image, _ in times["off"])
    medians = {name: statistics.median(i for i, _ in t) for name, t in times.items()}
    result = {
        "model": str(models),
        "steps": len(pipeline.timesteps),
        "every_n_steps": args.every,
        "images_per_side": args.n,
        "median_ms": {name: round(m, 2) for name, m in medians.items()},
        "ratio_vs_off": {name: round(m / off, 4) for name, m in medians.items()},
        # image time / image time without the hook's own time, summed over the side's images
        "ratio_direct": {
            name: round(sum(i for i, _ in t) / sum(i - h for i, h in t), 4) for name, t in times.items()
        },
        "png_encode_ms_host": {
            name: round(encode_ms(pipeline, kind), 3)
            for name, (kind, _) in sides.items()
            if kind and name != "auto"
        },
    }
    for name in sides:
        print(
            f"{name:>6}: median {result['median_ms'][name]:8.2f} ms/image  "
            f"ratio vs off {result['ratio_vs_off'][name]:.4f}  "
            f"ratio from the hook's own time {result['ratio_direct'][name]:.4f}"
        )
    print(f"preview PNG on a host thread (per polled step): {result['png_encode_ms_host']} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
