"""Inpainting masks, as A1111 prepares them: host-side numpy/PIL around the sampler.

A mask is white where the image may change. Its journey (A1111's img2img with a mask):

1. made grey-scale at the image's size; inverted if asked (``inpainting_mask_invert``);
2. blurred by a Gaussian of ``mask_blur_x``/``mask_blur_y`` pixels (kernel ``2*int(2.5*s+0.5)+1``,
   edges reflected, as OpenCV's ``GaussianBlur`` that A1111 calls);
3. "only masked" (``inpaint_full_res``): the mask's bounding box, padded, grown to the model's aspect
   ratio, is cropped from image and mask and worked at the model's size, then pasted back;
4. resized to the latent (bicubic) and rounded to 0/1 (``mask_round``): the sampler keeps the
   init latent, noised to each step's level, outside it (:meth:`Pipeline.generate`);
5. the final overlay: the original pixels come back wherever the blurred mask is 0, blended
   through it at the edge.

``masked_content`` (A1111's ``inpainting_fill``) decides what the masked area starts from: ``fill``
(the surrounding colours), ``original``, ``latent noise`` or ``latent nothing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

from pi_axera_sd.engine.imageio import resize_image

MaskedContent = Literal["fill", "original", "latent noise", "latent nothing"]
MASKED_CONTENT: tuple[MaskedContent, ...] = (
    "fill",
    "original",
    "latent noise",
    "latent nothing",
)  # A1111's 0-3
DEFAULT_MASK_BLUR = 4  # A1111's


@dataclass(frozen=True)
class MaskOptions:
    blur_x: int = DEFAULT_MASK_BLUR
    blur_y: int = DEFAULT_MASK_BLUR
    invert: bool = False
    masked_content: MaskedContent = "original"
    full_res: bool = False  # "only masked": work on the mask's region at the model's size
    full_res_padding: int = 0  # pixels around that region
    round: bool = True  # the latent mask rounded to 0/1 (A1111's mask_round)


def mask_from_image(image: Image.Image, size: tuple[int, int], invert: bool = False) -> np.ndarray:
    """A client's mask (any mode; alpha ignored) as float32 [H, W] in 0..1 at ``size`` (w, h)."""
    grey = image.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    mask = np.asarray(grey, dtype=np.float32) / 255.0
    return 1.0 - mask if invert else mask


def mask_from_alpha(image: Image.Image) -> np.ndarray:
    """OpenAI's edit mask: fully transparent pixels mark the area to edit -> float32 [H, W] 0/1."""
    alpha = np.asarray(image.getchannel("A"), dtype=np.uint8)
    return (alpha == 0).astype(np.float32)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = int(2.5 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def _blur_axis(mask: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    if sigma <= 0:
        return mask
    kernel = _gaussian_kernel(sigma)
    radius = len(kernel) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    # reflect without repeating the edge pixel: OpenCV's default border (BORDER_REFLECT_101)
    padded = np.pad(mask.astype(np.float64), pad, mode="reflect" if mask.shape[axis] > radius else "edge")
    out = np.zeros(mask.shape, dtype=np.float64)
    length = mask.shape[axis]
    for offset, weight in enumerate(kernel):
        window = padded[offset : offset + length] if axis == 0 else padded[:, offset : offset + length]
        out += weight * window
    return out.astype(np.float32)


def blur_mask(mask: np.ndarray, blur_x: float, blur_y: float) -> np.ndarray:
    """A1111's mask blur: horizontal then vertical Gaussian, quantised to 8 bits as its image is."""
    blurred = _blur_axis(_blur_axis(mask, blur_x, axis=1), blur_y, axis=0)
    return np.round(np.clip(blurred, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def crop_region(mask: np.ndarray, padding: int) -> tuple[int, int, int, int] | None:
    """The box (x1, y1, x2, y2) around the mask's non-zero pixels, grown by ``padding`` and kept
    inside the image; None for an empty mask."""
    ys, xs = np.nonzero(mask > 0)
    if len(xs) == 0:
        return None
    height, width = mask.shape
    return (
        max(int(xs.min()) - padding, 0),
        max(int(ys.min()) - padding, 0),
        min(int(xs.max()) + 1 + padding, width),
        min(int(ys.max()) + 1 + padding, height),
    )


def expand_to_aspect(
    box: tuple[int, int, int, int], target: tuple[int, int], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Grow ``box`` (inside an image of ``size`` w, h) to ``target``'s aspect ratio, as far as the
    image allows, keeping it centred where it can be."""
    x1, y1, x2, y2 = box
    width, height = size
    ratio = target[0] / target[1]
    box_w, box_h = x2 - x1, y2 - y1
    if box_w / box_h < ratio:  # too narrow: widen
        want = min(width, round(box_h * ratio))
        grow = want - box_w
        x1 = max(0, x1 - grow // 2)
        x2 = min(width, x1 + want)
        x1 = max(0, x2 - want)
    else:  # too flat: heighten
        want = min(height, round(box_w / ratio))
        grow = want - box_h
        y1 = max(0, y1 - grow // 2)
        y2 = min(height, y1 + want)
        y1 = max(0, y2 - want)
    return x1, y1, x2, y2


def latent_mask(mask: np.ndarray, latent_hw: tuple[int, int], round_mask: bool = True) -> np.ndarray:
    """The pixel mask at the latent's size, [1, 1, h, w] float32: bicubic, then rounded to 0/1."""
    image = Image.fromarray(np.round(mask * 255.0).astype(np.uint8))
    small = image.resize((latent_hw[1], latent_hw[0]), Image.Resampling.BICUBIC)
    values = np.asarray(small, dtype=np.float32) / 255.0
    if round_mask:
        values = np.round(values)
    return values[None, None].astype(np.float32)


def fill_masked(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """A1111's "fill": the masked area painted with the colours around it, by compositing ever less
    blurred copies of the unmasked image (alpha = outside the mask) over each other."""
    keep = Image.fromarray(np.round((1.0 - np.clip(mask, 0, 1)) * 255).astype(np.uint8))
    rgba = image.convert("RGB").convert("RGBA")
    rgba.putalpha(keep)
    premultiplied = rgba.convert("RGBa")  # blur colour weighted by alpha, so masked pixels add nothing
    result = Image.new("RGBA", image.size)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = premultiplied.filter(ImageFilter.GaussianBlur(radius)) if radius else premultiplied
        layer = blurred.convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(layer)
    return result.convert("RGB")


def overlay(generated: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The generated HWC uint8 image inside the (blurred) mask, the original outside it; where the
    mask is 0 the original's pixels come back unchanged."""
    alpha = np.clip(mask, 0.0, 1.0)[..., None]
    blended = generated.astype(np.float32) * alpha + original.astype(np.float32) * (1.0 - alpha)
    out = np.round(blended).astype(np.uint8)
    keep = alpha[..., 0] == 0.0
    out[keep] = original[keep]
    return out


@dataclass(frozen=True)
class InpaintPlan:
    """What an inpainting request sends to the sampler and how its image comes back."""

    image: Image.Image  # the init image at the model's size (cropped, for "only masked")
    latent_mask: np.ndarray  # [1, 1, h, w], 1 = change
    pixel_mask: np.ndarray  # [1, 1, H, W] at the model's size (what a 9-channel UNet's masked image uses)
    original: np.ndarray  # HWC uint8: what the result is composited over
    overlay_mask: np.ndarray  # [H, W] 0..1 at the original's size: where the result shows
    paste_box: tuple[int, int, int, int] | None  # "only masked": where the result goes in the original

    def finish(self, generated: np.ndarray) -> np.ndarray:
        """The generated HWC uint8 image put back: resized into its box ("only masked"), then
        composited so that outside the blurred mask the original's pixels are unchanged."""
        if self.paste_box is not None:
            x1, y1, x2, y2 = self.paste_box
            canvas = Image.fromarray(self.original)
            # A1111 pastes with its "crop" resize: the region's aspect ratio may differ from the model's
            patch = resize_image(Image.fromarray(generated), x2 - x1, y2 - y1, 1)
            canvas.paste(patch, (x1, y1))
            generated = np.asarray(canvas)
        return overlay(generated, self.original, self.overlay_mask)


def plan_inpaint(
    image: Image.Image,
    mask: np.ndarray,
    options: MaskOptions,
    model_size: tuple[int, int],
    latent_hw: tuple[int, int],
    resize_mode: int = 0,
    latent_source: np.ndarray | None = None,
) -> InpaintPlan:
    """A1111's img2img preparation for a mask (already at ``image``'s size, inverted if asked).
    ``latent_source``: A1111's separate ``latent_mask``, which then decides what the sampler keeps
    (taken as given: resized straight to the latent, not blurred, inverted or cropped)."""
    blurred = blur_mask(mask, options.blur_x, options.blur_y)
    box = crop_region(blurred, options.full_res_padding) if options.full_res else None
    if box is not None:  # "only masked": the region at the model's size, pasted back at the end
        box = expand_to_aspect(box, model_size, image.size)
        # in with A1111's "fill" resize (edge bands where the image cannot give the ratio)
        region = resize_image(image.crop(box), *model_size, 2)
        x1, y1, x2, y2 = box
        region_mask = _resized(blurred[y1:y2, x1:x2], model_size)
        original, overlay_mask = np.asarray(image.convert("RGB")), blurred
    else:  # the whole image at the model's size; A1111 doubles the overlay mask here
        region = resize_image(image, *model_size, resize_mode)
        region_mask = _resized(blurred, model_size, resize_mode)
        original, overlay_mask = np.asarray(region.convert("RGB")), np.clip(region_mask * 2.0, 0.0, 1.0)
    if options.masked_content == "fill":
        region = fill_masked(region, region_mask)
    return InpaintPlan(
        image=region,
        latent_mask=latent_mask(
            region_mask if latent_source is None else latent_source, latent_hw, options.round
        ),
        pixel_mask=region_mask[None, None].astype(np.float32),
        original=original,
        overlay_mask=overlay_mask,
        paste_box=box,
    )


def _resized(mask: np.ndarray, size: tuple[int, int], mode: int = 2) -> np.ndarray:
    image = resize_image(Image.fromarray(np.round(mask * 255).astype(np.uint8)), *size, mode)
    return np.asarray(image, dtype=np.float32) / 255.0
