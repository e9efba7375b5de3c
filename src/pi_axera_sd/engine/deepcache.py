"""DeepCache-style reuse of the UNet's deep features across LCM steps (training-free).

After Ma et al. 2023, "DeepCache: Accelerating Diffusion Models for Free" (arXiv 2312.00858): with
an interval N >= 2, steps 0, N, 2N... run the whole UNet (``unet_deep``, which also returns the
feature entering its last up block) and the steps between run only the shallow path
(``unet_shallow``) with that cached feature. N = 2 on LCM's 4 steps: full, reuse, full, reuse.
The files come from ``models export --deep-cache`` (:mod:`pi_axera_sd.modeltools.export_deepcache`).
"""

from __future__ import annotations

from pathlib import Path

from pi_axera_sd.engine.contract import UNET_DEEP, UNET_SHALLOW
from pi_axera_sd.errors import ModelError


def reuses_step(step: int, interval: int) -> bool:
    """Whether step ``step`` (0-based) of a generation runs the shallow path on the cached feature."""
    return interval >= 2 and step % interval != 0


def pair_paths(unet_deep: Path | None, unet_shallow: Path | None, root: Path) -> tuple[Path, Path]:
    """Both DeepCache files, or a :class:`ModelError` that names what is missing and how to make it."""
    if unet_deep is None or unet_shallow is None:
        missing = [
            f"{name}.onnx" for name, p in ((UNET_DEEP, unet_deep), (UNET_SHALLOW, unet_shallow)) if p is None
        ]
        raise ModelError(
            f"PI_AXERA_SD_DEEP_CACHE is on but {root} has no {' or '.join(missing)}; export them with "
            "'pi-axera-sd models export <source> <folder> --deep-cache', or set PI_AXERA_SD_DEEP_CACHE=0"
        )
    return unet_deep, unet_shallow
