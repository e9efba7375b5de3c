"""DeepCache per UNet step on the full-size benchmark model: the shallow path's time against the
whole UNet's, interleaved in one process (so a shared machine's load drifts equally on both), and
the error a reuse step makes on a real txt2img trajectory (its output against the whole UNet's on
the same input, relative L2).

    python bench/deepcache_steps.py [--variant int8] [--repeats 5]

Uses the ``-deepcache`` sibling folder ``bench/run.py`` builds (bench/models.py); prints ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models import ensure_deepcache, ensure_deepcache_int8, ensure_sd15  # noqa: E402
from worker import PROMPT  # noqa: E402


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def main() -> int:
    from pi_axera_sd.engine.contract import DEEP_FEATURE
    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import GenerationParams, Pipeline
    from pi_axera_sd.runtime import RuntimeOptions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["int8"], default=None, help="the INT8 pair (default: BF16/FP32)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    args = ap.parse_args()
    base = ensure_deepcache(ensure_sd15(size=args.size))
    if args.variant:
        ensure_deepcache_int8(base)
    layout = resolve_layout(base / "axera", variant=args.variant)
    pipe = Pipeline.load(layout, RuntimeOptions(runtime="openvino"), deep_cache=2)
    deep, shallow = pipe.unet, pipe.unet_shallow

    # the error of each reuse step: the shallow output against the whole UNet's on the same feeds
    errors: list[float] = []
    shallow_run = shallow.run

    def checked(feeds, outputs=None):
        (eps,) = shallow_run(feeds, outputs)
        full = {k: v for k, v in feeds.items() if k != DEEP_FEATURE}
        (ref,) = deep.run(full, [deep.output_names[0]])
        errors.append(float(np.linalg.norm(eps - ref) / np.linalg.norm(ref)))
        return [eps]

    shallow.run = checked
    pipe.generate(GenerationParams(PROMPT, seed=0))
    shallow.run = shallow_run

    rng = np.random.default_rng(0)
    latent = rng.standard_normal(pipe.latent_shape, dtype=np.float32)
    hidden = pipe.encode_prompt(PROMPT)
    t = pipe.timesteps[1]
    pipe.predict_noise(latent, t, hidden, 0)  # warm-up; keeps the feature a reuse step reads
    pipe.predict_noise(latent, t, hidden, 1)
    full_ms, shallow_ms = [], []
    for _ in range(args.repeats):
        full_ms.append(_ms(lambda: pipe.predict_noise(latent, t, hidden, 0)))
        shallow_ms.append(_ms(lambda: pipe.predict_noise(latent, t, hidden, 1)))
    f, s = statistics.median(full_ms), statistics.median(shallow_ms)
    print(f"model {base / 'axera'}, variant {args.variant or 'none'}, provider {deep.provider}")
    print(f"whole UNet step {f:.0f} ms, shallow step {s:.0f} ms (medians of {args.repeats}, interleaved)")
    print(f"shallow / whole step time: {s / f:.2f}")
    for interval in (2, 4):
        full_steps = -(-4 // interval)
        ratio = (full_steps * f + (4 - full_steps) * s) / (4 * f)
        print(f"4-step UNet time with interval {interval}: {ratio:.2f}x of no reuse (from these medians)")
    print(
        "relative L2 error of each txt2img reuse step vs the whole UNet: "
        + ", ".join(f"{e:.3f}" for e in errors)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
