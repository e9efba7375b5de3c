"""What a mask costs: the host's preparation and overlay, and the per-step latent blend, against one
UNet step of the benchmark model measured in the same run.

    python bench/mask_cost.py [--size tiny|full]

The blend (the init latent noised to the next step's level, mixed in through the mask) is numpy on
the host between UNet runs; it adds no UNet work. Preparation and overlay run on a host thread,
outside the inference lane.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_ms

from pi_axera_sd.engine.masks import MaskOptions, plan_inpaint
from pi_axera_sd.engine.scheduler import LcmScheduler


def main() -> None:
    from models import ensure_sd15

    from pi_axera_sd.engine.layout import resolve_layout
    from pi_axera_sd.engine.pipeline import Pipeline
    from pi_axera_sd.runtime import RuntimeOptions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    args = parser.parse_args()
    engine = Pipeline.load(
        resolve_layout(ensure_sd15(size=args.size) / "axera"), RuntimeOptions(runtime="onnxruntime")
    )
    size, latent_shape = (engine.width, engine.height), engine.latent_shape
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    mask = np.zeros((size[1], size[0]), np.float32)
    mask[size[1] // 4 : 3 * size[1] // 4, size[0] // 4 : 3 * size[0] // 4] = 1.0

    plan = plan_inpaint(image, mask, MaskOptions(full_res=False), size, latent_shape[2:])
    prepare = median_ms(
        lambda: plan_inpaint(image, mask, MaskOptions(full_res=False), size, latent_shape[2:]), 5
    )
    generated = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    finish = median_ms(lambda: plan.finish(generated), 5)

    scheduler = LcmScheduler()
    clean, first, latent = (rng.standard_normal(latent_shape).astype(np.float32) for _ in range(3))
    outside = 1.0 - plan.latent_mask

    def blend() -> None:
        known = scheduler.add_noise(clean, first, 259)
        (known * outside + latent * (1.0 - outside)).astype(np.float32)

    blend_ms = median_ms(blend, 200)
    hidden = engine.encode_prompt("a red fox")
    step_ms = median_ms(lambda: engine.predict_noise(latent, 999, hidden), 2)
    print(f"model: {size[0]}x{size[1]}, latent {list(latent_shape)}")
    print(f"  host: prepare the mask (blur 4) {prepare:.1f} ms, overlay {finish:.1f} ms (off the lane)")
    ratio = blend_ms / step_ms
    print(f"  per step: blend {blend_ms:.3f} ms against one UNet step {step_ms:.0f} ms: {ratio:.2e}x")


if __name__ == "__main__":
    main()
