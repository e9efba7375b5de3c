"""AXERA's sample LCM server dialect on ``POST /generate`` (chat assistants on the M.2 card call it).

Which behaviour a request gets is decided by its fields alone:

* a body with ``init_image_base64`` or ``return_base64`` is the AXERA sample dialect. Its
  ``init_image_base64`` (img2img when present) becomes the original service's ``init_image``; the answer adds
  ``image_base64`` (when ``return_base64`` is true, the default), ``width``, ``height`` and
  ``save_path`` (the saved PNG, or null). With ``return_base64: false`` the image is saved to
  ``OUTPUT_DIR`` even when ``SAVE_IMAGES`` is off, since ``save_path`` is then the only way to it.
  Errors keep the original service's shape, whose ``error`` string is what these clients read.
* any other body is the original service's request and gets exactly the original service's answer
  (``status``, ``base64``, ``text_time_ms``, ``total_time_ms``, ``seed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pi_axera_sd.server.dialects.schemas import Flag, Lenient

AXERA_FIELDS = ("init_image_base64", "return_base64")


def is_axera_sample(body: Any) -> bool:
    return isinstance(body, dict) and any(key in body for key in AXERA_FIELDS)


class AxeraSampleFields(Lenient):
    return_base64: Flag = True


def wants_base64(body: dict[str, Any]) -> bool:
    if body.get("return_base64") is None:
        return True
    return AxeraSampleFields.parse(body).return_base64


def to_generate_request(body: dict[str, Any]) -> dict[str, Any]:
    """The same request in the original service's words (its own ``init_image``/``mode`` keys are
    not read)."""
    generate_body = {k: v for k, v in body.items() if k not in (*AXERA_FIELDS, "init_image", "mode")}
    image = body.get("init_image_base64")
    if image is not None and image != "":
        generate_body["init_image"] = image
        generate_body["mode"] = "img2img"  # its strength default: defaults.STRENGTH_BY_DIALECT["axera"]
    else:
        generate_body["mode"] = "txt2img"
    return generate_body


def axera_answer(
    generate_answer: dict[str, Any],
    *,
    width: int,
    height: int,
    saved_to: Path | None,
    with_image: bool,
    save_error: str | None = None,
) -> dict[str, Any]:
    """The original service's answer plus the fields AXERA's clients read; a copy that could not be saved has
    ``save_path`` null and the reason in ``save_error``."""
    image = generate_answer.pop("base64")
    answer = {**generate_answer, "width": width, "height": height}
    answer["save_path"] = str(saved_to) if saved_to is not None else None
    if save_error is not None:
        answer["save_error"] = f"output folder not writable or full: {save_error}"
    if with_image:
        answer["image_base64"] = image
    return answer
