"""Tests for engine.imageio: safe decoding, A1111 resize modes, tensors and PNG metadata."""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pi_axera_sd.engine import imageio
from pi_axera_sd.engine.imageio import (
    ALLOWED_FORMATS,
    ImageLimits,
    decode_base64_image,
    decode_image_bytes,
    encode_png,
    from_model_output,
    read_png_parameters,
    resize_image,
    to_base64,
    to_model_input,
)
from pi_axera_sd.errors import InvalidInput, PayloadTooLarge

SEED_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)
WHITE = (255, 255, 255)


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _pattern(width: int = 32, height: int = 24, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def _bilevel_png(width: int, height: int) -> bytes:
    """A valid, all-black 1-bit PNG built by hand: tiny on disk, huge when decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (
        imageio._PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


# --- base64 / data URI -------------------------------------------------------------------------


def test_plain_base64_and_data_uri_give_same_pixels() -> None:
    source = _pattern()
    b64 = to_base64(_encode(source, "PNG"))
    plain = decode_base64_image(b64)
    uri = decode_base64_image("data:image/png;base64," + b64)
    assert plain.mode == "RGB" and uri.mode == "RGB"
    assert np.array_equal(np.asarray(plain), np.asarray(source))
    assert np.array_equal(np.asarray(uri), np.asarray(source))


def test_data_uri_with_other_image_mime_and_whitespace() -> None:
    source = _pattern(8, 8, seed=1)
    b64 = to_base64(_encode(source, "PNG"))
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    image = decode_base64_image(f"  \n data:image/jpeg;base64,{wrapped}\r\n\t ")
    assert np.array_equal(np.asarray(image), np.asarray(source))


def test_missing_base64_padding_is_tolerated() -> None:
    image = decode_base64_image(SEED_PNG.rstrip("="))
    assert image.size == (1, 1)


def test_non_image_data_uri_rejected() -> None:
    with pytest.raises(InvalidInput, match="text/plain"):
        decode_base64_image("data:text/plain;base64," + SEED_PNG)


def test_invalid_base64_rejected() -> None:
    with pytest.raises(InvalidInput, match="not valid base64"):
        decode_base64_image("this is *not* base64!!")


@pytest.mark.parametrize("value", ["", "   \n\t ", "data:image/png;base64,"])
def test_empty_rejected(value: str) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        decode_base64_image(value)


@pytest.mark.parametrize("value", [None, b"abc", 42])
def test_non_string_rejected(value: object) -> None:
    with pytest.raises(InvalidInput):
        decode_base64_image(value)  # type: ignore[arg-type]


def test_non_image_bytes_rejected() -> None:
    b64 = base64.b64encode(b"hello, this is just some text, definitely not a picture").decode()
    with pytest.raises(InvalidInput, match="allowed formats") as info:
        decode_base64_image(b64)
    assert not isinstance(info.value, PayloadTooLarge)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_rejected_naming_allowed(fmt: str) -> None:
    raw = _encode(_pattern(8, 8), fmt)
    with pytest.raises(InvalidInput) as info:
        decode_image_bytes(raw)
    message = str(info.value)
    assert fmt in message
    for allowed in ALLOWED_FORMATS:
        assert allowed in message


def test_too_many_encoded_bytes_before_decoding() -> None:
    raw = _encode(_pattern(64, 64), "PNG")
    limits = ImageLimits(max_encoded_bytes=1000)
    assert len(raw) > 1000
    with pytest.raises(PayloadTooLarge, match="1000 bytes"):
        decode_base64_image(to_base64(raw), limits)
    # Over the estimated size, even garbage is refused as too large, not as bad base64: the
    # length check must come first.
    with pytest.raises(PayloadTooLarge):
        decode_base64_image("!" * 2000, limits)
    with pytest.raises(PayloadTooLarge, match="1000 bytes"):
        decode_image_bytes(raw, limits)


def test_at_limit_is_accepted() -> None:
    raw = _encode(_pattern(8, 8), "PNG")
    image = decode_image_bytes(raw, ImageLimits(max_encoded_bytes=len(raw)))
    assert image.size == (8, 8)


# --- pixel limits and decompression bombs -------------------------------------------------------


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_too_many_pixels_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _bilevel_png(10000, 10000)
    assert len(raw) < 100_000  # really a cheap file

    def fail_load(self: object) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", fail_load)
    with pytest.raises(PayloadTooLarge) as info:
        decode_image_bytes(raw, ImageLimits(max_pixels=1000))
    message = str(info.value)
    assert "10000x10000" in message and "1000 pixels" in message


def test_pixel_limit_is_inclusive() -> None:
    raw = _bilevel_png(40, 25)
    assert decode_image_bytes(raw, ImageLimits(max_pixels=1000)).size == (40, 25)
    with pytest.raises(PayloadTooLarge):
        decode_image_bytes(raw, ImageLimits(max_pixels=999))


def test_decompression_bomb_header_refused_quickly() -> None:
    # A 100000 x 100000 RGB header (30 GB decoded) with a few bytes of "data".
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    raw = (
        imageio._PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    start = time.perf_counter()
    with pytest.raises(PayloadTooLarge):
        decode_base64_image(to_base64(raw))
    assert time.perf_counter() - start < 2.0


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_bomb_warning_as_error_is_payload_too_large() -> None:
    # 100M pixels is over Pillow's warning threshold but under its hard error; with warnings turned
    # into errors Pillow raises the warning class itself, which must still map to 413.
    with pytest.raises(PayloadTooLarge):
        decode_image_bytes(_bilevel_png(10000, 10000), ImageLimits(max_pixels=10**9))


def test_truncated_png_rejected() -> None:
    raw = _encode(_pattern(64, 64), "PNG")
    with pytest.raises(InvalidInput) as info:
        decode_image_bytes(raw[: len(raw) // 2])
    assert not isinstance(info.value, PayloadTooLarge)


def test_truncated_jpeg_rejected() -> None:
    raw = _encode(_pattern(64, 64), "JPEG", quality=90)
    with pytest.raises(InvalidInput):
        decode_image_bytes(raw[: len(raw) // 2])


# --- orientation, transparency, formats ---------------------------------------------------------


def test_exif_orientation_6_is_applied() -> None:
    # Stored landscape: left half red, right half blue. Orientation 6 = rotate 90° clockwise to view.
    stored = Image.new("RGB", (64, 32), RED)
    stored.paste(BLUE, (32, 0, 64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image_bytes(raw)
    assert image.size == (32, 64)
    arr = np.asarray(image).astype(int)
    # After a clockwise turn the old left (red) is on top and the old right (blue) at the bottom.
    assert np.abs(arr[8, 16] - RED).max() < 30
    assert np.abs(arr[56, 16] - BLUE).max() < 30


def test_rgba_transparency_flattened_to_white() -> None:
    rgba = Image.new("RGBA", (4, 2), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((1, 0), (0, 0, 0, 128))  # half-transparent black
    image = decode_image_bytes(_encode(rgba, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == WHITE
    assert all(abs(c - 127) <= 1 for c in image.getpixel((1, 0)))
    assert image.getpixel((2, 0)) == RED


def test_la_transparency_flattened_to_white() -> None:
    la = Image.new("LA", (2, 1), (0, 255))
    la.putpixel((0, 0), (0, 0))
    image = decode_image_bytes(_encode(la, "PNG"))
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == (0, 0, 0)


def test_palette_transparency_flattened_to_white() -> None:
    pal = Image.new("P", (3, 1), 1)
    pal.putpalette([0, 0, 0, *GREEN] + [0] * (256 - 2) * 3)
    pal.putpixel((0, 0), 0)
    raw = _encode(pal, "PNG", transparency=0)
    assert Image.open(io.BytesIO(raw)).mode == "P"
    image = decode_image_bytes(raw)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == WHITE  # palette entry 0 (black) is transparent
    assert image.getpixel((1, 0)) == GREEN


def test_rgb_color_key_transparency_flattened_to_white() -> None:
    rgb = Image.new("RGB", (2, 1), BLUE)
    rgb.putpixel((0, 0), RED)
    image = decode_image_bytes(_encode(rgb, "PNG", transparency=RED))
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == BLUE


def test_sixteen_bit_grey_scaled_not_clipped() -> None:
    grey = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    image = decode_image_bytes(_encode(grey, "PNG"))
    assert [image.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), WHITE]


def test_jpeg_decodes() -> None:
    source = Image.new("RGB", (16, 16), (200, 50, 30))
    image = decode_base64_image(to_base64(_encode(source, "JPEG", quality=95)))
    assert image.mode == "RGB" and image.size == (16, 16)
    assert np.abs(np.asarray(image).astype(int) - (200, 50, 30)).max() < 6


def test_cmyk_jpeg_decodes_to_rgb() -> None:
    source = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    image = decode_image_bytes(_encode(source, "JPEG", quality=95))
    assert image.mode == "RGB"
    assert np.abs(np.asarray(image).astype(int) - RED).max() < 10


def test_webp_decodes() -> None:
    source = _pattern(12, 10, seed=3)
    image = decode_base64_image("data:image/webp;base64," + to_base64(_encode(source, "WEBP", lossless=True)))
    assert image.mode == "RGB"
    assert np.array_equal(np.asarray(image), np.asarray(source))


def test_seed_one_pixel_png_decodes() -> None:
    image = decode_base64_image(SEED_PNG)
    assert image.size == (1, 1)
    assert image.mode == "RGB"


# --- resize ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("size", [(64, 64), (96, 40), (40, 96)])
def test_resize_produces_exact_size(mode: int, size: tuple[int, int]) -> None:
    out = resize_image(_pattern(50, 30), size[0], size[1], mode)
    assert out.size == size
    assert out.mode == "RGB"


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_resize_same_size_returns_equal_copy(mode: int) -> None:
    source = _pattern(20, 10)
    out = resize_image(source, 20, 10, mode)
    assert out is not source
    assert np.array_equal(np.asarray(out), np.asarray(source))


def _striped(width: int, height: int, stripe: int) -> Image.Image:
    """Blue image with a red vertical stripe of the given width in the middle."""
    image = Image.new("RGB", (width, height), BLUE)
    left = (width - stripe) // 2
    image.paste(RED, (left, 0, left + stripe, height))
    return image


def test_crop_and_resize_keeps_center() -> None:
    source = _striped(600, 200, 200)  # the centre 200x200 square is exactly the red stripe
    cropped = np.asarray(resize_image(source, 100, 100, 1)).astype(int)
    reddish = (cropped[..., 0] > 200) & (cropped[..., 2] < 60)
    assert reddish.mean() > 0.95
    # Stretching (mode 0) would bring the blue sides in: proves the test tells the modes apart.
    stretched = np.asarray(resize_image(source, 100, 100, 0)).astype(int)
    assert tuple(stretched[50, 2]) == BLUE


def test_crop_and_resize_tall_target() -> None:
    source = Image.new("RGB", (200, 200), BLUE)
    source.paste(RED, (50, 0, 150, 200))
    out = np.asarray(resize_image(source, 50, 100, 1)).astype(int)
    assert (out[..., 0] > 200).mean() > 0.95


def test_resize_and_fill_keeps_whole_image_and_extends_edges() -> None:
    source = _pattern(200, 100, seed=5)
    out = np.asarray(resize_image(source, 100, 100, 2))
    fitted = np.asarray(source.resize((100, 50), Image.Resampling.LANCZOS))
    # The whole source, scaled to fit, sits in the middle...
    assert np.array_equal(out[25:75], fitted)
    # ...and each band repeats the nearest edge row.
    assert np.array_equal(out[:25], np.broadcast_to(fitted[0], (25, 100, 3)))
    assert np.array_equal(out[75:], np.broadcast_to(fitted[-1], (25, 100, 3)))


def test_resize_and_fill_columns_for_tall_source() -> None:
    source = _pattern(50, 100, seed=6)
    out = np.asarray(resize_image(source, 101, 100, 2))
    # 50x100 fits 101x100 unscaled; the 51 spare columns split 25 left / 26 right.
    src = np.asarray(source)
    assert np.array_equal(out[:, 25:75], src)
    assert np.array_equal(out[:, :25], np.repeat(src[:, :1], 25, axis=1))
    assert np.array_equal(out[:, 75:], np.repeat(src[:, -1:], 26, axis=1))


@pytest.mark.parametrize("mode", [-1, 4, 99, "1", 1.0, None])
def test_bad_resize_mode_rejected(mode: object) -> None:
    with pytest.raises(InvalidInput, match="resize_mode"):
        resize_image(_pattern(8, 8), 16, 16, mode)  # type: ignore[arg-type]


@pytest.mark.parametrize(("width", "height"), [(0, 16), (16, -1), (16.0, 16)])
def test_bad_resize_size_rejected(width: object, height: object) -> None:
    with pytest.raises(InvalidInput):
        resize_image(_pattern(8, 8), width, height, 0)  # type: ignore[arg-type]


# --- model tensors -----------------------------------------------------------------------------


def test_model_input_layout_and_range() -> None:
    source = Image.new("RGB", (3, 2), (0, 255, 0))
    source.putpixel((1, 0), (255, 0, 127))
    x = to_model_input(source)
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32
    assert x[0, :, 0, 0].tolist() == [-1.0, 1.0, -1.0]
    assert x[0, 0, 0, 1] == 1.0 and x[0, 1, 0, 1] == -1.0
    assert abs(x[0, 2, 0, 1] - (127 / 127.5 - 1)) < 1e-6


def test_model_round_trip_within_one_level() -> None:
    arr = np.random.default_rng(7).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    back = from_model_output(to_model_input(Image.fromarray(arr)))
    assert back.shape == arr.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - arr.astype(int)).max() <= 1


def _diffusers_reference(x: np.ndarray) -> np.ndarray:
    # diffusers: (image / 2 + 0.5).clamp(0, 1), permute to NHWC, float(), (x * 255).round() -> uint8
    y = np.clip(x / 2 + 0.5, 0, 1).astype(np.float32)
    y = np.round(y * np.float32(255)).astype(np.uint8)
    return y[0].transpose(1, 2, 0)


def test_model_output_matches_diffusers_formula() -> None:
    x = (np.random.default_rng(8).standard_normal((1, 3, 16, 16)) * 1.5).astype(np.float32)
    assert (x > 1).any() and (x < -1).any()
    out = from_model_output(x)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.array_equal(out, _diffusers_reference(x))
    # Out-of-range values clamp rather than wrap around.
    assert out[(x[0] > 1).transpose(1, 2, 0)].min() == 255
    assert out[(x[0] < -1).transpose(1, 2, 0)].max() == 0


def test_model_output_rounds_half_to_even() -> None:
    x = np.full((1, 3, 1, 1), -0.4, dtype=np.float32)
    scaled = float((np.clip(x / 2 + 0.5, 0, 1) * np.float32(255))[0, 0, 0, 0])
    assert scaled == 76.5  # precondition: exactly halfway in float32
    assert from_model_output(x)[0, 0].tolist() == [76, 76, 76]  # half-up would give 77


def test_model_output_rejects_batches() -> None:
    with pytest.raises(ValueError):
        from_model_output(np.zeros((2, 3, 4, 4), np.float32))


# --- PNG output and metadata -------------------------------------------------------------------


def test_encode_png_parameters_round_trip() -> None:
    text = 'a cat, "quoted": ünïcødé ✓\nNegative prompt: dog\nSteps: 4, Seed: 1'
    arr = np.asarray(_pattern(9, 7, seed=9))
    raw = encode_png(arr, parameters=text)
    assert raw.startswith(b"\x89PNG")
    params, texts = read_png_parameters(raw)
    assert params == text
    assert texts == {"parameters": text}
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")), arr)
    # Pillow agrees on what we wrote.
    assert Image.open(io.BytesIO(raw)).info["parameters"] == text


def test_encode_png_latin1_uses_text_chunk_and_image_input() -> None:
    raw = encode_png(_pattern(4, 4), parameters="plain prompt")
    assert b"tEXtparameters\x00plain prompt" in raw
    assert read_png_parameters(raw)[0] == "plain prompt"


def test_encode_png_without_parameters() -> None:
    raw = encode_png(_pattern(4, 4))
    assert read_png_parameters(raw) == (None, {})


def test_encode_png_compress_level_is_used() -> None:
    image = Image.new("RGB", (256, 256), (10, 20, 30))
    assert len(encode_png(image, compress_level=0)) > 10 * len(encode_png(image, compress_level=9))


def test_encode_png_rejects_non_uint8_arrays() -> None:
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2, 3), np.float32))


def test_read_png_all_text_chunk_kinds() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "p1")
    info.add_text("comment", "zipped " * 50, zip=True)  # zTXt
    info.add_itxt("title", "Tïtle ✓", zip=True)  # compressed iTXt
    raw = _encode(_pattern(4, 4), "PNG", pnginfo=info)
    params, texts = read_png_parameters(raw)
    assert params == "p1"
    assert texts == {"parameters": "p1", "comment": "zipped " * 50, "title": "Tïtle ✓"}


def test_read_png_text_after_image_data() -> None:
    raw = encode_png(_pattern(4, 4))
    iend = raw.rindex(b"IEND") - 4
    late = _png_chunk(b"tEXt", b"parameters\x00late text")
    params, _ = read_png_parameters(raw[:iend] + late + raw[iend:])
    assert params == "late text"


@pytest.mark.parametrize(
    "raw",
    [
        _encode(Image.new("RGB", (4, 4)), "JPEG"),
        _encode(Image.new("RGB", (4, 4)), "WEBP"),
        b"not an image at all",
        b"",
    ],
)
def test_read_png_parameters_other_data(raw: bytes) -> None:
    assert read_png_parameters(raw) == (None, {})


def test_to_base64_round_trip() -> None:
    raw = bytes(range(256))
    text = to_base64(raw)
    assert isinstance(text, str) and "\n" not in text
    assert base64.b64decode(text) == raw
