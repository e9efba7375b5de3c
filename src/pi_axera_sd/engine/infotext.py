"""AUTOMATIC1111 "infotext": the generation-parameters text stored in a PNG's ``parameters`` chunk.

Layout::

    <prompt, possibly several lines>
    Negative prompt: <negative prompt, possibly several lines>
    Steps: 4, Sampler: LCM, CFG scale: 1, Seed: 42, Size: 512x512, Model: m, Version: pi-axera-sd 0.1.0

The last line holds ``Key: value`` pairs. A value containing a separator (``,`` ``:`` or a newline)
is written as a JSON string, as A1111 does, so A1111, its extensions and :func:`parse_infotext`
can all read it back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pi_axera_sd import __version__

if TYPE_CHECKING:
    from pi_axera_sd.engine.pipeline import GenerationResult

__all__ = ["build_infotext", "parse_infotext"]

NEGATIVE_PREFIX = "Negative prompt:"
VERSION = f"pi-axera-sd {__version__}"

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_SIZE = re.compile(r"(\d+)x(\d+)")
# One "Key: value" pair: a key free of separators, then a JSON string or text up to the next comma.
_PAIR = re.compile(r'\s*(?P<key>[^\s:,"][^:,"\n]*?)\s*:\s*(?P<value>"(?:\\.|[^\\"])*"|[^,]*?)\s*(?:,|$)')
_BAD_KEY = re.compile(r'[:,"\n\r]')
# A1111 treats a last line as parameters only when it has at least this many pairs.
_MIN_PARAM_PAIRS = 3


def _format_number(value: float) -> str:
    """Shortest text that reads back as the same number, without a trailing ``.0``."""
    if math.isfinite(value) and value.is_integer():
        return str(int(value))
    return repr(float(value))


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_number(value)
    text = str(value)
    # Quote whatever would otherwise split, be trimmed, be unquoted, or come back as a number.
    needs_quotes = (
        any(ch in text for ch in ",:\n\r")
        or text != text.strip()
        or text.startswith('"')
        or _FLOAT.fullmatch(text) is not None
    )
    return json.dumps(text, ensure_ascii=False) if needs_quotes else text


def result_infotext(result: GenerationResult) -> str:
    """A1111's ``parameters`` text for an image, from the result alone. The negative prompt only with
    guidance (CFG above 1): otherwise it was not used, so the infotext does not claim it was."""
    params = result.params
    return build_infotext(
        prompt=params.prompt,
        negative_prompt=params.negative_prompt if params.guided else "",
        cfg_scale=params.cfg_scale,
        steps=len(result.timesteps),
        seed=result.seed,
        width=result.width,
        height=result.height,
        model=result.model_name,
        denoising_strength=result.denoising_strength,
        extra={
            "RNG": result.randn_source,  # A1111 writes "RNG: CPU" when not using the GPU's
            # reuse changes the image, so a seed reproduces it only with the same interval
            "DeepCache": result.deep_cache or None,
            "Prompt syntax": None if params.prompt_syntax else "off",  # the prompt was literal text
            "Warnings": "; ".join(result.warnings) or None,  # ours: what the model did not follow
        },
    )


def build_infotext(
    *,
    prompt: str,
    negative_prompt: str = "",
    steps: int,
    seed: int,
    width: int,
    height: int,
    model: str,
    sampler: str = "LCM",
    cfg_scale: float = 1,
    denoising_strength: float | None = None,
    extra: Mapping[str, object] | None = None,
) -> str:
    """Build A1111-style infotext. ``extra`` pairs with a ``None`` value are left out."""
    params: dict[str, object] = {
        "Steps": steps,
        "Sampler": sampler,
        "CFG scale": float(cfg_scale),
        "Seed": seed,
        "Size": f"{width}x{height}",
        "Model": model,
    }
    if denoising_strength is not None:
        params["Denoising strength"] = float(denoising_strength)
    for key, value in (extra or {}).items():
        if not key or key != key.strip() or _BAD_KEY.search(key):
            raise ValueError(f"infotext key {key!r} must be non-empty without ':', ',', '\"' or newlines")
        if value is not None:
            params[key] = value
    params.setdefault("Version", VERSION)

    # Size is built by us as "WxH" and must stay unquoted so A1111 splits it into Size-1/Size-2.
    line = ", ".join(
        f"{key}: {value if key == 'Size' else _format_value(value)}" for key, value in params.items()
    )
    text = prompt
    if negative_prompt:
        text += f"\n{NEGATIVE_PREFIX} {negative_prompt}"
    return f"{text}\n{line}"


def _convert(value: str) -> object:
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def _parse_params(line: str) -> dict[str, object] | None:
    """Parse a whole ``Key: value, ...`` line, or return None if any part of it is not a pair."""
    result: dict[str, object] = {}
    pos = 0
    count = 0
    while pos < len(line):
        if not line[pos:].strip():
            break
        match = _PAIR.match(line, pos)
        if match is None or match.end() == pos:
            return None
        pos = match.end()
        count += 1
        key, raw = match["key"], match["value"]
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            try:
                result[key] = json.loads(raw)
            except json.JSONDecodeError:
                result[key] = raw
            continue
        result[key] = _convert(raw)
        size = _SIZE.fullmatch(raw)
        if size:
            result[f"{key}-1"] = int(size[1])
            result[f"{key}-2"] = int(size[2])
    if count < _MIN_PARAM_PAIRS:
        return None
    return result


def parse_infotext(text: str) -> dict[str, object]:
    """Inverse of :func:`build_infotext`; also reads infotext written by AUTOMATIC1111.

    Returns "Prompt", "Negative prompt" and every pair of the parameters line, with quoted values
    unquoted, numbers converted, and ``WxH`` values additionally split into ``Key-1``/``Key-2``.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # trailing blank lines carry nothing

    params: dict[str, object] = {}
    parsed = _parse_params(lines[-1])
    if parsed is not None:
        params = parsed
        lines = lines[:-1]

    prompt_lines: list[str] = []
    negative_lines: list[str] | None = None
    for line in lines:
        if negative_lines is None and line.startswith(NEGATIVE_PREFIX):
            # Everything from here on (multi-line negatives included) is the negative prompt.
            negative_lines = [line[len(NEGATIVE_PREFIX) :].removeprefix(" ")]
        elif negative_lines is not None:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)

    result: dict[str, object] = {
        "Prompt": "\n".join(prompt_lines),
        "Negative prompt": "\n".join(negative_lines or []),
    }
    result.update(params)
    return result
