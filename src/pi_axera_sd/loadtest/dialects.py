"""The request shapes a load test can send: one per API dialect the service speaks, and a mix."""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DIALECTS = ("generate", "txt2img", "img2img", "interrogate", "mix")


@dataclass(frozen=True)
class Call:
    kind: str
    path: str
    body: dict[str, Any]
    images: int  # images a 200 answer carries (0 for interrogation)


def _init_png_b64(size: int = 64) -> str:
    """A small gradient PNG as the img2img / interrogation input (the service resizes it)."""
    from PIL import Image  # here, not at import: the CLI reads DIALECTS while building its parser

    image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def calls(dialect: str, prompt: str = "a lighthouse at dusk, oil painting") -> Iterator[Call]:
    """An endless stream of requests for ``dialect`` (fixed seeds: runs are comparable)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; one of {', '.join(DIALECTS)}")
    image = _init_png_b64()
    shapes = {
        "generate": Call("generate", "/generate", {"prompt": prompt, "seed": 7}, 1),
        "txt2img": Call("txt2img", "/sdapi/v1/txt2img", {"prompt": prompt, "seed": 7}, 1),
        "img2img": Call(
            "img2img",
            "/sdapi/v1/img2img",
            {"prompt": prompt, "seed": 7, "init_images": [image], "denoising_strength": 0.6},
            1,
        ),
        "interrogate": Call("interrogate", "/sdapi/v1/interrogate", {"image": image, "model": "clip"}, 0),
    }
    if dialect == "mix":
        # Mostly generation, as a front-end would send it, with some img2img and interrogation.
        order = ["txt2img", "generate", "img2img", "txt2img", "interrogate"]
        return (shapes[name] for name in itertools.cycle(order))
    return itertools.repeat(shapes[dialect])
