"""Host-side (CPU) work around a job, run in the service's host threads, never on the lane:
decoding client images, reading PNG text, encoding results and saving copies."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pi_axera_sd.engine.imageio import encode_png, to_base64
from pi_axera_sd.engine.infotext import result_infotext
from pi_axera_sd.engine.pipeline import GenerationResult
from pi_axera_sd.fileio import write_bytes_atomic


@dataclass(frozen=True)
class EncodedImage:
    seed: int
    infotext: str
    png: bytes | None
    base64: str | None
    encode_ms: float
    saved_to: Path | None
    save_error: str | None = None  # the opt-in copy could not be written (the image is answered anyway)


@dataclass(frozen=True)
class EncodeOptions:
    compress_level: int
    want_base64: bool
    save_dir: Path | None  # the opt-in copy in OUTPUT_DIR
    name_prefix: str  # request id, so saved files can be matched with log lines


def encode_result(result: GenerationResult, opts: EncodeOptions, index: int) -> EncodedImage:
    """Infotext, PNG (with the infotext in its ``parameters`` chunk), base64, and the saved copy."""
    start = time.perf_counter()
    text = result_infotext(result)
    png = None
    if opts.want_base64 or opts.save_dir is not None:
        png = encode_png(result.pixels, text, compress_level=opts.compress_level)
    b64 = to_base64(png) if opts.want_base64 and png is not None else None
    saved, save_error = None, None
    if opts.save_dir and png:
        try:
            saved = save_copy(opts.save_dir, png, opts.name_prefix, index, result.seed)
        except OSError as exc:  # a full or read-only disk: a side effect failed, not the job
            save_error = exc.strerror or str(exc)
    return EncodedImage(
        seed=result.seed,
        infotext=text,
        png=png,
        base64=b64,
        encode_ms=(time.perf_counter() - start) * 1000.0,
        saved_to=saved,
        save_error=save_error,
    )


def save_copy(directory: Path, png: bytes, prefix: str, index: int, seed: int) -> Path:
    """``<dir>/<YYYY-MM-DD>/<HHMMSS>-<request id>-<index>-<seed>.png``, written atomically."""
    now = datetime.now()
    day = directory / now.strftime("%Y-%m-%d")
    safe_prefix = re.sub(r"[^A-Za-z0-9_-]", "", prefix)[:16] or "req"
    path = day / f"{now:%H%M%S}-{safe_prefix}-{index}-{seed}.png"
    made_day = not day.exists()
    try:
        write_bytes_atomic(path, png)  # no partial file: written beside it, then renamed
    except OSError:
        if made_day:  # no empty dated folder left behind (rmdir refuses one another save filled)
            with contextlib.suppress(OSError):
                day.rmdir()
        raise
    return path
