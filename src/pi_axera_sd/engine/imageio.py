"""Image input/output: safe decoding of user images, A1111 resize modes, model tensors and PNG output.

Everything a client sends goes through :func:`decode_base64_image` / :func:`decode_image_bytes`, which
enforce size limits *before* any pixel data is decoded, so a small upload cannot make the service
allocate gigabytes (a "decompression bomb").
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from pi_axera_sd.errors import InvalidInput, PayloadTooLarge

__all__ = [
    "ALLOWED_FORMATS",
    "ImageLimits",
    "decode_base64_image",
    "decode_image_bytes",
    "encode_png",
    "from_model_output",
    "read_png_parameters",
    "resize_image",
    "to_base64",
    "to_model_input",
]


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds on a client-supplied image."""

    max_encoded_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 4096 * 4096


ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP"}

# Pillow reports JPEGs carrying a multi-picture index (common from phone cameras) as "MPO"; the
# first picture is an ordinary JPEG, so accept it as one.
_FORMAT_ALIASES = {"MPO": "JPEG"}

_ALLOWED_TEXT = ", ".join(sorted(ALLOWED_FORMATS))

# Matches data URIs such as "data:image/png;base64," (any image subtype, optional extra parameters).
_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")

# Magic numbers of formats people commonly try, only to give a clearer rejection message.
_KNOWN_MAGIC = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"8BPS", "PSD"),
)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bound on the text read back from one PNG, so a zTXt/iTXt "zip bomb" cannot exhaust memory.
_MAX_PNG_TEXT = 8 * 1024 * 1024


def _too_many_bytes(size: int, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"image is about {size} bytes, more than the limit of {max_bytes} bytes")


def decode_base64_image(
    data: str, limits: ImageLimits = ImageLimits(), *, keep_alpha: bool = False
) -> Image.Image:
    """Decode a base64 string or ``data:image/...;base64,`` URI into an RGB image (RGBA when
    ``keep_alpha`` and the image has transparency: OpenAI's edit masks are read from it).

    Raises :class:`InvalidInput` for anything that is not a usable image and
    :class:`PayloadTooLarge` when a limit is exceeded.
    """
    raw = decode_base64_payload(data, limits.max_encoded_bytes)
    return decode_image_bytes(raw, limits, keep_alpha=keep_alpha)


def decode_base64_payload(data: str, max_bytes: int) -> bytes:
    """The raw bytes of a base64 string or ``data:image/...;base64,`` URI, without decoding pixels."""
    if not isinstance(data, str):
        raise InvalidInput(f"image must be a base64 string, not {type(data).__name__}")
    text = data.strip()
    match = _DATA_URI.match(text)
    if match:
        mime = match["mime"].strip().lower()
        params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
        if mime and not mime.startswith("image/"):
            raise InvalidInput(f"data URI has media type {mime!r}; an image is required")
        if "base64" not in params:
            raise InvalidInput("data URI must be base64-encoded (data:image/...;base64,...)")
        text = text[match.end() :]
    # Base64 is often wrapped at 76 columns; line breaks and spaces carry no data.
    text = _WHITESPACE.sub("", text)
    if not text:
        raise InvalidInput("image is empty")

    # Estimate the decoded size from the text length so an oversized payload is refused before
    # we spend memory decoding it.
    estimated = len(text) * 3 // 4
    if estimated > max_bytes:
        raise _too_many_bytes(estimated, max_bytes)

    # Tolerate missing "=" padding, which some clients strip.
    if len(text) % 4:
        text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("image is not valid base64") from None
    return raw


def _sniff_format(raw: bytes) -> str | None:
    for magic, name in _KNOWN_MAGIC:
        if raw.startswith(magic):
            return name
    if raw[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return None


def decode_image_bytes(
    raw: bytes, limits: ImageLimits = ImageLimits(), *, keep_alpha: bool = False
) -> Image.Image:
    """Decode encoded PNG/JPEG/WebP bytes into an upright RGB image with alpha flattened onto white."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InvalidInput(f"image must be bytes, not {type(raw).__name__}")
    raw = bytes(raw)
    if not raw:
        raise InvalidInput("image is empty")
    if len(raw) > limits.max_encoded_bytes:
        raise _too_many_bytes(len(raw), limits.max_encoded_bytes)

    try:
        # Only our allowed formats' parsers ever see the bytes; Image.open reads the header only.
        image = Image.open(io.BytesIO(raw), formats=sorted(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fired while reading the header (the warning only arrives as an
        # exception when warnings are configured as errors). Either way: too many pixels.
        raise PayloadTooLarge(
            f"image has too many pixels (limit {limits.max_pixels} pixels): {exc}"
        ) from None
    except Exception:
        # Pillow raises assorted types (UnidentifiedImageError, SyntaxError, struct.error...) on junk.
        sniffed = _sniff_format(raw)
        what = f"{sniffed} images are not supported" if sniffed else "not a recognised or intact image"
        raise InvalidInput(f"image is {what}; allowed formats: {_ALLOWED_TEXT}") from None

    fmt = _FORMAT_ALIASES.get(image.format or "", image.format)
    if fmt not in ALLOWED_FORMATS:
        raise InvalidInput(f"image format {image.format} is not supported; allowed formats: {_ALLOWED_TEXT}")

    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidInput(f"image has an invalid size {width}x{height}")
    if width * height > limits.max_pixels:
        # Checked on the header's size, before load() allocates and decodes the pixels.
        raise PayloadTooLarge(
            f"image is {width}x{height} = {width * height} pixels, "
            f"more than the limit of {limits.max_pixels} pixels"
        )

    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"image data is too large: {exc}") from None
    except Exception:
        # Truncated or corrupt pixel data; Pillow signals it with OSError, ValueError, SyntaxError...
        raise InvalidInput(f"{fmt} image is truncated or corrupt") from None

    # A malformed EXIF block should not make an otherwise fine picture unusable.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    if keep_alpha and _has_alpha(image):
        return image.convert("RGBA")
    return flatten_alpha(image)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def flatten_alpha(image: Image.Image) -> Image.Image:
    """Convert any decoded mode to RGB, compositing transparency onto a white background."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow's own conversion clips 16-bit grey at 255 (turning it white); rescale to 8 bits.
        arr = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")

    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        # paste with the alpha as mask = alpha compositing of straight-alpha pixels over white.
        background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return background
    if mode != "RGB":
        return image.convert("RGB")
    return image


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidInput(f"{name} must be a positive integer, got {value!r}")


def resize_image(image: Image.Image, width: int, height: int, mode: int) -> Image.Image:
    """Resize to exactly ``width`` x ``height`` using AUTOMATIC1111's ``resize_mode`` meanings.

    0 (and 3, A1111's latent upscale, which has no latent here): stretch.
    1: scale to cover keeping the aspect ratio, centre-crop.
    2: scale to fit keeping the aspect ratio, centre it, and fill the bands by extending the edge pixels.
    """
    _check_size(width, height)
    if isinstance(mode, bool) or not isinstance(mode, int) or mode not in (0, 1, 2, 3):
        raise InvalidInput(f"resize_mode must be 0, 1, 2 or 3, got {mode!r}")
    src_w, src_h = image.size
    if (src_w, src_h) == (width, height):
        return image.copy()

    if mode in (0, 3):
        return image.resize((width, height), Image.Resampling.LANCZOS)

    if mode == 1:
        # Largest centred source window with the target's aspect ratio; resizing from a float box
        # crops and scales in one pass, with no rounding of an intermediate size.
        crop_w = min(float(src_w), src_h * width / height)
        crop_h = min(float(src_h), src_w * height / width)
        left = (src_w - crop_w) / 2
        top = (src_h - crop_h) / 2
        box = (left, top, left + crop_w, top + crop_h)
        return image.resize((width, height), Image.Resampling.LANCZOS, box=box)

    # mode 2: fit inside, then replicate the outermost rows/columns into the empty bands.
    scale = min(width / src_w, height / src_h)
    fit_w = min(width, max(1, round(src_w * scale)))
    fit_h = min(height, max(1, round(src_h * scale)))
    fitted = (
        image if (fit_w, fit_h) == (src_w, src_h) else image.resize((fit_w, fit_h), Image.Resampling.LANCZOS)
    )
    pad_left = (width - fit_w) // 2
    pad_top = (height - fit_h) // 2
    pad = [(pad_top, height - fit_h - pad_top), (pad_left, width - fit_w - pad_left)]
    arr = np.asarray(fitted)
    pad += [(0, 0)] * (arr.ndim - 2)
    result = Image.fromarray(np.pad(arr, pad, mode="edge"))
    if fitted.mode == "P":
        # Padding copied palette indices; give them their palette back.
        result.putpalette(fitted.getpalette() or [])
    return result


def to_model_input(image: Image.Image) -> np.ndarray:
    """RGB image -> float32 NCHW ``[1, 3, H, W]`` in [-1, 1], the VAE encoder's input."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    arr = np.asarray(image, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def from_model_output(x: np.ndarray) -> np.ndarray:
    """VAE decoder output (float NCHW ``[1, 3, H, W]`` in [-1, 1]) -> uint8 HWC image array.

    Mirrors diffusers' post-processing exactly: ``(x / 2 + 0.5).clamp(0, 1)`` in the model's dtype,
    then float32 ``(x * 255).round()`` (round-half-to-even), so outputs match reference images.
    """
    x = np.asarray(x)
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected a batch of one image, got shape {x.shape}")
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected shape [1, 3, H, W], got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    half = x.dtype.type(0.5)
    y = np.clip(x / x.dtype.type(2) + half, 0, 1).astype(np.float32)
    y = np.rint(y * np.float32(255))
    # NaN would cast to an undefined value (with a warning); NumPy/torch give 0 in practice.
    y = np.nan_to_num(y, nan=0.0)
    return np.ascontiguousarray(y.astype(np.uint8).transpose(1, 2, 0))


def encode_png(
    image: np.ndarray | Image.Image, parameters: str | None = None, compress_level: int = 4
) -> bytes:
    """Encode as PNG, embedding A1111's ``parameters`` text chunk when given.

    Latin-1 text goes in a tEXt chunk; Pillow switches to UTF-8 iTXt for anything else.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 array, got {image.dtype}")
        image = Image.fromarray(image)
    info = None
    if parameters is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", parameters)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    return buf.getvalue()


def _inflate_limited(data: bytes, budget: int) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, budget + 1)
    except zlib.error:
        return None
    return out if len(out) <= budget else None


def read_png_parameters(raw: bytes) -> tuple[str | None, dict[str, str]]:
    """Return the ``parameters`` text and all text chunks of a PNG; ``(None, {})`` for other data.

    Walks the chunks directly instead of asking Pillow, so the pixels are never decompressed and
    text chunks after the image data are found too.
    """
    raw = bytes(raw)
    if not raw.startswith(_PNG_SIGNATURE):
        return None, {}
    texts: dict[str, str] = {}
    remaining = _MAX_PNG_TEXT
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(raw) and remaining > 0:
        length, ctype = struct.unpack(">I4s", raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + length]
        pos += 12 + length  # length + type + data + CRC
        if len(body) < length or ctype == b"IEND":
            break
        parsed = _parse_text_chunk(ctype, body, remaining)
        if parsed is not None:
            key, value = parsed
            texts.setdefault(key, value)  # first occurrence wins, like Pillow
            remaining -= len(value)
    return texts.get("parameters"), texts


def _parse_text_chunk(ctype: bytes, body: bytes, budget: int) -> tuple[str, str] | None:
    """Decode one tEXt/zTXt/iTXt chunk; None for other chunk types or malformed ones."""
    if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
        return None
    key_bytes, sep, rest = body.partition(b"\x00")
    if not sep or not key_bytes:
        return None
    key = key_bytes.decode("latin-1")
    if ctype == b"tEXt":
        return key, rest[:budget].decode("latin-1")
    if ctype == b"zTXt":
        # 1 byte compression method (0 = zlib), then the compressed text.
        if not rest or rest[0] != 0:
            return None
        text = _inflate_limited(rest[1:], budget)
        return None if text is None else (key, text.decode("latin-1"))
    # iTXt: compression flag, method, language tag\0, translated keyword\0, text (UTF-8).
    if len(rest) < 2:
        return None
    flag, method = rest[0], rest[1]
    parts = rest[2:].split(b"\x00", 2)
    if len(parts) != 3:
        return None
    data: bytes | None = parts[2]
    if flag:
        data = _inflate_limited(parts[2], budget) if method == 0 else None
    if data is None:
        return None
    return key, data[:budget].decode("utf-8", errors="replace")


def to_base64(raw: bytes) -> str:
    """Plain (not data-URI) base64 text of ``raw``."""
    return base64.b64encode(raw).decode("ascii")
