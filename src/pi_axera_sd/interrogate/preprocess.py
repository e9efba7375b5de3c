"""CLIP image preprocessing in numpy/Pillow, matching transformers' ``CLIPImageProcessor``.

Steps: convert to RGB (transparency composited onto white), resize the shortest side to
``resize`` with bicubic filtering (the long side is ``int(resize * long / short)``), centre-crop
``crop_height`` x ``crop_width`` (zero padding when the resized image is smaller), scale to [0, 1],
normalise with the CLIP mean/std, and lay out as NCHW float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pi_axera_sd.errors import InvalidInput

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Above this many pixels in the resized (uncropped) image, resize only the crop window instead:
# an extreme aspect ratio (1 x 16M) would otherwise allocate gigabytes. Pillow's box resize can
# differ from resize-then-crop by a grey level or so, which is why it is not the default path.
_MAX_INTERMEDIATE_PIXELS = 8_000_000


@dataclass(frozen=True)
class ImageSpec:
    """How images are turned into the vision tower's ``pixel_values``."""

    resize: int = 224  # shortest side after resizing
    crop_height: int = 224
    crop_width: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], fallback_size: int | None = None) -> ImageSpec:
        """Read ``image_resize`` / ``image_size`` / ``image_mean`` / ``image_std`` from a clip manifest."""
        size = int(manifest.get("image_size", fallback_size or 224))
        resize = int(manifest.get("image_resize", size))
        mean = tuple(float(v) for v in manifest.get("image_mean", CLIP_MEAN))
        std = tuple(float(v) for v in manifest.get("image_std", CLIP_STD))
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0 or size <= 0 or resize <= 0:
            raise ValueError(f"bad image preprocessing settings: size {size}, mean {mean}, std {std}")
        return cls(resize, size, size, mean, std)  # type: ignore[arg-type]


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of ``image``; transparency is composited onto white, as CLIPImageProcessor does."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def resized_size(width: int, height: int, shortest: int) -> tuple[int, int]:
    """(width, height) after scaling the shortest side to ``shortest``; the long side is truncated."""
    if width <= height:
        return shortest, int(shortest * height / width)
    return int(shortest * width / height), shortest


def _resize_and_crop(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """uint8 HWC array of the centre crop of the resized image."""
    width, height = image.size
    new_w, new_h = resized_size(width, height, spec.resize)
    top, left = (new_h - spec.crop_height) // 2, (new_w - spec.crop_width) // 2
    fits = top >= 0 and left >= 0
    bicubic = Image.Resampling.BICUBIC
    if fits and new_w * new_h > _MAX_INTERMEDIATE_PIXELS:
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + spec.crop_width) * sx, (top + spec.crop_height) * sy)
        return np.asarray(image.resize((spec.crop_width, spec.crop_height), bicubic, box=box))
    resized = image if (new_w, new_h) == (width, height) else image.resize((new_w, new_h), bicubic)
    arr = np.asarray(resized)
    if fits:
        return arr[top : top + spec.crop_height, left : left + spec.crop_width]
    # The crop is larger than the resized image: centre it on a black canvas.
    out_h, out_w = max(spec.crop_height, new_h), max(spec.crop_width, new_w)
    canvas = np.zeros((out_h, out_w, 3), dtype=np.uint8)
    pad_top, pad_left = -(-(out_h - new_h) // 2), -(-(out_w - new_w) // 2)
    canvas[pad_top : pad_top + new_h, pad_left : pad_left + new_w] = arr
    top, left = top + pad_top, left + pad_left
    return canvas[top : top + spec.crop_height, left : left + spec.crop_width]


def clip_pixels(image: Image.Image, spec: ImageSpec = ImageSpec()) -> np.ndarray:
    """A PIL image -> ``pixel_values`` float32 ``[1, 3, crop_height, crop_width]``."""
    if not isinstance(image, Image.Image):
        raise InvalidInput(f"expected a decoded image, got {type(image).__name__}")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidInput(f"image has no pixels ({width}x{height})")
    try:
        rgb = to_rgb(image)
        crop = _resize_and_crop(rgb, spec)
    except (OSError, ValueError) as exc:  # truncated data surfaces only when pixels are read
        raise InvalidInput(f"image could not be read: {exc}") from exc
    # Same arithmetic as transformers: rescale in float64, cast, then normalise in float32.
    scaled = (crop.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    normalised = (scaled - mean) / std
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None], dtype=np.float32)


def clip_pixels_batch(images: Sequence[Image.Image], spec: ImageSpec = ImageSpec()) -> np.ndarray:
    """Several images -> ``[N, 3, H, W]``."""
    return np.concatenate([clip_pixels(image, spec) for image in images], axis=0)
