"""CLIP image preprocessing against transformers' CLIPImageProcessor, and bad images."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image

from pi_axera_sd.errors import InvalidInput
from pi_axera_sd.interrogate.preprocess import ImageSpec, clip_pixels, clip_pixels_batch, resized_size
from support.clip import random_image


@pytest.fixture(scope="module")
def processor():
    from transformers import CLIPImageProcessor

    logging.getLogger("transformers").setLevel(logging.ERROR)  # "falls back to the PIL backend"
    return CLIPImageProcessor()


def _reference(processor, image: Image.Image) -> np.ndarray:
    return np.asarray(processor(images=image, return_tensors="np")["pixel_values"])


@pytest.mark.parametrize(
    "size",
    [(640, 480), (480, 640), (224, 224), (225, 224), (1000, 333), (333, 1000), (37, 29), (7, 300), (1, 1)],
)
def test_matches_clip_image_processor(processor, size):
    image = random_image(*size, seed=sum(size))
    ours = clip_pixels(image)
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, _reference(processor, image))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "CMYK"])
def test_other_modes_match(processor, mode):
    rgb = random_image(300, 200, seed=3)
    image = rgb.convert(mode)
    if mode in ("RGBA", "LA"):
        alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300), dtype=np.uint8))
        image.putalpha(alpha)
    np.testing.assert_array_equal(clip_pixels(image), _reference(processor, image))


def test_batch_and_custom_spec():
    spec = ImageSpec(resize=64, crop_height=48, crop_width=48)
    batch = clip_pixels_batch([random_image(100, 80), random_image(80, 100)], spec)
    assert batch.shape == (2, 3, 48, 48)


def test_crop_larger_than_resize_pads_with_black():
    spec = ImageSpec(resize=32, crop_height=40, crop_width=40)
    out = clip_pixels(Image.new("RGB", (64, 32), (255, 255, 255)), spec)
    black = (0 - np.float32(spec.mean[0])) / np.float32(spec.std[0])
    assert out.shape == (1, 3, 40, 40)
    assert np.isclose(out[0, 0, 0, 0], black)  # corner: padding
    assert out[0, 0, 20, 20] > 1.5  # centre: the white image


def test_extreme_aspect_ratio_does_not_blow_up():
    """A 1 x 40000 image would be resized to 224 x 8,960,000 pixels first; only the crop is made."""
    image = Image.new("RGB", (40000, 1), (10, 200, 30))
    assert resized_size(40000, 1, 224) == (8_960_000, 224)
    out = clip_pixels(image)
    assert out.shape == (1, 3, 224, 224) and np.isfinite(out).all()


def test_not_an_image():
    with pytest.raises(InvalidInput, match="decoded image"):
        clip_pixels(np.zeros((4, 4, 3), np.uint8))  # type: ignore[arg-type]


def test_empty_image():
    with pytest.raises(InvalidInput, match="no pixels"):
        clip_pixels(Image.new("RGB", (0, 0)))


def test_truncated_image_is_a_clear_error():
    buf = io.BytesIO()
    random_image(256, 256).save(buf, format="PNG")
    lazy = Image.open(io.BytesIO(buf.getvalue()[:2000]))  # header fine, pixel data cut off
    with pytest.raises(InvalidInput, match="could not be read"):
        clip_pixels(lazy)


def test_manifest_spec():
    spec = ImageSpec.from_manifest({"image_size": 256, "image_resize": 288})
    assert (spec.resize, spec.crop_height, spec.crop_width) == (288, 256, 256)
    assert ImageSpec.from_manifest({}, fallback_size=336).crop_height == 336
    with pytest.raises(ValueError):
        ImageSpec.from_manifest({"image_std": [0, 1, 1]})
