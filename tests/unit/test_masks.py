"""A1111's mask handling (engine.masks): blur, crop, latent mask, fill, overlay."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pi_axera_sd.engine.masks import (
    MaskOptions,
    blur_mask,
    crop_region,
    expand_to_aspect,
    fill_masked,
    latent_mask,
    mask_from_alpha,
    mask_from_image,
    overlay,
    plan_inpaint,
)


def square(size=64, box=(16, 16, 48, 48)) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = 1.0
    return mask


def test_blur_zero_is_the_mask_and_blur_spreads_as_opencvs_kernel():
    mask = square()
    assert np.array_equal(blur_mask(mask, 0, 0), mask)
    blurred = blur_mask(mask, 4, 4)
    radius = int(2.5 * 4 + 0.5)  # OpenCV's kernel half-width for sigma 4, as A1111 sizes it
    assert blurred[32, : 16 - radius].max() == 0 and blurred[32, 16 - radius + 1] > 0
    assert blurred[32, 32] == 1.0 and 0.4 < blurred[32, 16] < 0.6
    assert np.allclose(blurred, blurred[:, ::-1], atol=1 / 255) and np.allclose(
        blurred, blurred.T, atol=1 / 255
    )
    only_x = blur_mask(mask, 4, 0)
    assert np.array_equal(only_x[:, 32], mask[:, 32])  # no vertical spread


def test_crop_region_pads_and_stays_inside():
    mask = square(box=(10, 20, 30, 25))
    assert crop_region(mask, 0) == (10, 20, 30, 25)
    assert crop_region(mask, 15) == (0, 5, 45, 40)
    assert crop_region(np.zeros((8, 8)), 4) is None


@pytest.mark.parametrize(("box", "target"), [((10, 20, 30, 25), (64, 64)), ((0, 0, 10, 30), (128, 64))])
def test_expand_to_aspect_matches_the_model_shape(box, target):
    x1, y1, x2, y2 = expand_to_aspect(box, target, (100, 80))
    assert 0 <= x1 < x2 <= 100 and 0 <= y1 < y2 <= 80
    assert x1 <= box[0] and y1 <= box[1] and x2 >= box[2] and y2 >= box[3]
    assert abs((x2 - x1) / (y2 - y1) - target[0] / target[1]) < 0.1


def test_latent_mask_is_rounded_to_the_latent_grid():
    small = latent_mask(square(), (8, 8))
    assert small.shape == (1, 1, 8, 8) and set(np.unique(small)) == {0.0, 1.0}
    assert small[0, 0, 2:6, 2:6].all() and not small[0, 0, :2].any()


def test_masks_from_luminance_and_alpha():
    grey = Image.fromarray((square(8, (2, 2, 6, 6)) * 255).astype(np.uint8))
    assert np.array_equal(mask_from_image(grey, (8, 8)), square(8, (2, 2, 6, 6)))
    assert np.array_equal(mask_from_image(grey, (8, 8), invert=True), 1 - square(8, (2, 2, 6, 6)))
    rgba = np.full((8, 8, 4), 255, np.uint8)
    rgba[2:6, 2:6, 3] = 0
    assert np.array_equal(mask_from_alpha(Image.fromarray(rgba, "RGBA")), square(8, (2, 2, 6, 6)))


def test_fill_paints_only_the_masked_area_with_the_colours_around_it():
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32] = (200, 0, 0)
    image[:, 32:] = (0, 0, 200)
    image[16:48, 16:48] = (0, 255, 0)  # what the mask hides
    mask = square()
    filled = np.asarray(fill_masked(Image.fromarray(image), mask))
    assert np.array_equal(filled[mask == 0], image[mask == 0])
    assert filled[16:48, 16:48, 1].max() < 60  # no green left: it came from the surroundings
    assert filled[32, 18, 0] > filled[32, 18, 2] and filled[32, 45, 2] > filled[32, 45, 0]


def test_overlay_gives_the_original_wherever_the_mask_is_zero():
    rng = np.random.default_rng(0)
    original, generated = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    mask = blur_mask(square(), 3, 3)
    out = overlay(generated, original, mask)
    assert np.array_equal(out[mask == 0], original[mask == 0])
    assert np.array_equal(out[mask == 1], generated[mask == 1])


def test_only_masked_plan_crops_and_pastes_back():
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8))
    mask = np.zeros((80, 100), np.float32)
    mask[30:40, 60:75] = 1.0
    plan = plan_inpaint(image, mask, MaskOptions(blur_x=0, blur_y=0, full_res=True), (64, 64), (8, 8))
    assert plan.image.size == (64, 64) and plan.paste_box is not None
    x1, y1, x2, y2 = plan.paste_box
    assert (x2 - x1) == (y2 - y1)  # the model's square aspect
    back = plan.finish(np.zeros((64, 64, 3), np.uint8))
    assert back.shape == (80, 100, 3)
    assert np.array_equal(back[mask == 0], np.asarray(image)[mask == 0])
    assert not back[mask == 1].any()
