"""Request bodies: lenient where the original service promises it, strict where a value is actually used.

* Unknown keys are kept and ignored (``extra="allow"``): clients send dozens (A1111's full form,
  SillyTavern's ``url``/``auth``), and rejecting any of them breaks a client.
* Fields the model cannot honour (steps, sampler, cfg_scale, width/height...) are not validated at all.
* Fields the service uses are parsed here; a malformed one (a seed of ``"abc"``) is a 400 with the
  field's name, while an out-of-range one is brought into range (strength 1.5 -> 1.0), as the original
  service says: "erring on the side of successful generation".
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from pi_axera_sd.defaults import DEFAULT_VAE, STRENGTH_BY_DIALECT, TAG_TOP_K, TINY_VAE_NAMES, VAE_CHOICES
from pi_axera_sd.engine.masks import DEFAULT_MASK_BLUR, MASKED_CONTENT, MaskOptions
from pi_axera_sd.engine.noise import randn_source
from pi_axera_sd.errors import InvalidInput

_SHOWN = 40  # characters of a bad value quoted back in an error (it may be a whole image)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _bad(kind: str, message: str, value: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message + ", got {got}", {"got": _shown(value)})


def _integer(value: Any) -> int:
    """An integer from JSON: 42, 42.0 or "42"; never a bool, a fraction or other text."""
    if isinstance(value, bool):
        raise _bad("integer", "must be an integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _bad("integer", "must be an integer", value)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _bad("number", "must be a number", value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _bad("number", "must be a number", value) from None
    else:
        raise _bad("number", "must be a number", value)
    if not math.isfinite(number):
        raise _bad("number", "must be a finite number", value)
    return number


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value)


def _seed(value: Any) -> int | None:
    return None if value is None else _integer(value)


def _strength(value: Any) -> float | None:
    return None if value is None else min(1.0, max(0.0, _number(value)))


def _resize_mode(value: Any) -> int:
    if value is None:
        return 0
    mode = _integer(value)
    return mode if mode in (0, 1, 2, 3) else 0  # out of range: the default, as A1111 would stretch


def _count(value: Any) -> int:
    return 1 if value is None else max(1, _integer(value))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad("text", "must be a string", value)
    return value


def _required_text(value: Any) -> str:
    if value is None:
        raise PydanticCustomError("missing", "is required")
    return _text(value)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise _bad("flag", "must be true or false", value)


def _mode(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("txt2img", "img2img"):
        return value.strip().lower()
    raise _bad("mode", "must be 'txt2img' or 'img2img'", value)


_FULL_VAE_NAMES = ("full", "automatic", "auto", "none")  # A1111's names for "the model's own VAE"
_VAE_RULE = "must be " + " or ".join(f"'{v}'" for v in VAE_CHOICES)


def _vae(value: Any) -> str | None:
    """``full``/``tiny`` (our field) or an A1111 VAE name: ``taesd`` selects the tiny decoder."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad("vae", _VAE_RULE, value)
    name = value.strip().lower()
    if name in TINY_VAE_NAMES:
        return "tiny"
    if name in _FULL_VAE_NAMES:
        return DEFAULT_VAE
    raise _bad("vae", f"{_VAE_RULE} (TAESD)", value)


def _image_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]  # a single image where a list belongs: accept it
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise _bad(
        "images", "must be a list of base64 image strings", "[...]" if isinstance(value, list) else value
    )


def _image(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad("image", "must be a base64 image string", "{...}" if isinstance(value, dict) else value)
    return value


def option_flag(key: str, value: Any) -> bool:
    """An on/off option (``/sdapi/v1/options`` or ``override_settings``): true/false, 1/0, "true"..."""
    try:
        return _flag(value)
    except PydanticCustomError:
        raise InvalidInput(f"{key} must be true or false, not {_shown(value)}") from None


Seed = Annotated[int | None, BeforeValidator(_seed)]
Strength = Annotated[float | None, BeforeValidator(_strength)]
ResizeMode = Annotated[int, BeforeValidator(_resize_mode)]
Count = Annotated[int, BeforeValidator(_count)]
Text = Annotated[str, BeforeValidator(_text)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Mode = Annotated[Literal["txt2img", "img2img"] | None, BeforeValidator(_mode)]
ImageList = Annotated[list[str] | None, BeforeValidator(_image_list)]
Image = Annotated[str | None, BeforeValidator(_image)]
# Documented as accepted: the names _vae knows (any case, surrounding spaces allowed).
_VAE_NAMES = ["", *dict.fromkeys((*VAE_CHOICES, *TINY_VAE_NAMES, *_FULL_VAE_NAMES))]
Vae = Annotated[
    str | None,
    BeforeValidator(_vae),
    WithJsonSchema({"anyOf": [{"type": "string", "enum": _VAE_NAMES}, {"type": "null"}]}),
]
# Structured interrogation: category name -> non-empty list of non-blank labels.
CATEGORIES_SCHEMA = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": "\\S"},
    "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "\\S"}},
}


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")

    @classmethod
    def parse(cls, body: Any) -> Any:
        """Validate a parsed JSON body; problems become one :class:`InvalidInput` naming each field."""
        if not isinstance(body, dict):
            raise InvalidInput(f"request body must be a JSON object, not {type(body).__name__}")
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise InvalidInput(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


CfgScale = Annotated[float | None, BeforeValidator(_optional_number)]


def _blur(value: Any) -> int | None:
    return None if value is None else min(MAX_MASK_BLUR, max(0, _integer(value)))


def _fill(value: Any) -> int:
    fill = 0 if value is None else _integer(value)  # A1111's API default: 0, fill
    if fill not in (0, 1, 2, 3):
        raise _bad(
            "inpainting_fill", "must be 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing)", value
        )
    return fill


Blur = Annotated[int | None, BeforeValidator(_blur)]
MAX_MASK_BLUR = 64  # pixels; A1111's slider stops there


class MaskFields(Lenient):
    """A1111's inpainting fields, with its defaults; ``mask``: white where the image may change."""

    mask: Image = None
    mask_blur: Blur = None  # sets both of the next two
    mask_blur_x: Blur = DEFAULT_MASK_BLUR
    mask_blur_y: Blur = DEFAULT_MASK_BLUR
    inpainting_fill: Annotated[int, BeforeValidator(_fill)] = 0  # A1111's API default: fill
    inpaint_full_res: Flag = True  # "only masked"
    inpaint_full_res_padding: Annotated[int, BeforeValidator(lambda v: max(0, _integer(v or 0)))] = 0
    inpainting_mask_invert: Annotated[int, BeforeValidator(lambda v: 1 if _flag(v or 0) else 0)] = 0
    initial_noise_multiplier: Annotated[float | None, BeforeValidator(_optional_number)] = None
    mask_round: Flag = True
    latent_mask: Image = None  # what the sampler keeps, when it differs from the overlay's mask

    def mask_options(self) -> MaskOptions:
        blur_x = self.mask_blur if self.mask_blur is not None else self.mask_blur_x
        blur_y = self.mask_blur if self.mask_blur is not None else self.mask_blur_y
        return MaskOptions(
            blur_x=blur_x or 0,
            blur_y=blur_y or 0,
            invert=bool(self.inpainting_mask_invert),
            masked_content=MASKED_CONTENT[self.inpainting_fill],
            full_res=self.inpaint_full_res,
            full_res_padding=self.inpaint_full_res_padding,
            round=self.mask_round,
        )


class GenerateRequest(MaskFields):
    """The original service's ``POST /generate``. Other keys (steps, sampler, n_iter, batch_size, width,
    height...) are accepted and ignored. ``negative_prompt`` and ``cfg_scale`` are extensions: used
    when guidance is on, and the answer's ``warnings`` say when they were not."""

    mode: Mode = Field(None, description="txt2img or img2img; default: img2img when init_image is given")
    prompt: Annotated[str, BeforeValidator(_required_text)] = Field(
        ..., description="what to draw (required)"
    )
    seed: Seed = Field(None, description="-1 or absent: random; the seed used is returned")
    init_image: Image = Field(None, description="img2img: base64 PNG/JPEG/WebP, data URI allowed")
    denoising_strength: Strength = Field(
        None,
        # "strength" is the original Pi service's name for it
        validation_alias=AliasChoices("denoising_strength", "strength"),
        description=f"img2img: 0-1 (default {STRENGTH_BY_DIALECT['generate']}, as the original service), "
        "1-4 of the 4 LCM steps; clamped. Also accepted as 'strength'",
    )
    resize_mode: ResizeMode = Field(0, description="A1111 resize mode: 0 stretch, 1 crop, 2 fill")
    vae: Vae = Field(None, description="VAE decoder: full, or tiny (TAESD, ~3x faster image) if installed")
    negative_prompt: Text = Field("", description="what to steer away from; needs guidance (cfg setting)")
    cfg_scale: CfgScale = Field(None, description="guidance scale above 1 (with the cfg setting on)")
    mask_image: Image = Field(
        None, description="img2img inpainting: white where the image may change (A1111's mask fields apply)"
    )

    def resolved_mode(self) -> str:
        return self.mode or ("img2img" if self.init_image is not None else "txt2img")


class Txt2ImgRequest(Lenient):
    """A1111's txt2img body. Used: prompt, negative_prompt and cfg_scale (with guidance on), seed,
    batch_size, n_iter, send_images, override_settings. Everything else is accepted and ignored."""

    prompt: Text = ""
    negative_prompt: Text = ""
    cfg_scale: CfgScale = None  # None: A1111's default (7); used only with guidance on, capped
    seed: Seed = -1
    batch_size: Count = 1
    n_iter: Count = 1
    send_images: Flag = True
    save_images: Flag = False
    vae: Vae = None  # our extension; A1111 clients use override_settings.sd_vae ("taesd")
    override_settings: dict[str, Any] | None = None

    def requested_vae(self) -> str | None:
        if self.vae is not None:
            return self.vae
        name = (self.override_settings or {}).get("sd_vae")
        try:
            return _vae(name)
        except PydanticCustomError:
            return None  # an A1111 VAE name we do not have: ignored like other unsupported settings

    def override_flag(self, key: str) -> bool | None:
        """An on/off ``override_settings`` key (``cfg``, ``prompt_syntax``); a bad value is a 400."""
        value = (self.override_settings or {}).get(key)
        return None if value is None else option_flag(f"override_settings.{key}", value)

    def requested_randn_source(self) -> str | None:
        """``override_settings.randn_source``: it changes the image, so a bad one is a 400."""
        name = (self.override_settings or {}).get("randn_source")
        return None if name is None else randn_source(name)


class Img2ImgRequest(Txt2ImgRequest, MaskFields):
    """A1111's img2img body: txt2img's fields plus the init image (the first one is used) and the
    inpainting fields."""

    init_images: ImageList = None
    resize_mode: ResizeMode = 0
    denoising_strength: Strength = STRENGTH_BY_DIALECT["a1111"]
    include_init_images: Flag = False


class PromptTokensRequest(Lenient):
    prompt: Annotated[str, BeforeValidator(_required_text)] = Field(..., description="the prompt to count")
    prompt_syntax: Annotated[bool | None, BeforeValidator(lambda v: None if v is None else _flag(v))] = Field(
        None, description="read A1111's prompt language (default: the prompt_syntax setting)"
    )


class PngInfoRequest(Lenient):
    image: Image = None


class InterrogateRequest(Lenient):
    image: Image = None
    model: Text = "clip"
    top_k: Count = TAG_TOP_K
    threshold: Annotated[float | None, BeforeValidator(_optional_number)] = None


class StructuredInterrogateRequest(Lenient):
    image: Image = None
    # Checked by the route (its rules need the service's label limit); documented here.
    categories: Annotated[Any, WithJsonSchema(CATEGORIES_SCHEMA)] = None


def openapi_body(
    model: type[BaseModel], *, required: tuple[str, ...] = (), extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A route's documented request body when the route parses the JSON itself. ``required``
    names fields the route refuses to go without (documented as required, never null) although
    the model lets them default, so a missing one gets the route's own message."""
    schema = model.model_json_schema()
    schema["additionalProperties"] = True
    for name in required:
        field = schema["properties"][name]
        kinds = [kind for kind in field.pop("anyOf", [field.copy()]) if kind.get("type") != "null"]
        field.pop("default", None)
        field.update(kinds[0] if len(kinds) == 1 else {"anyOf": kinds})
        schema.setdefault("required", []).append(name)
    schema.update(extra or {})
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# /generate: img2img (asked for, or implied by init_image) needs init_image.
GENERATE_RULES = {
    "if": {"properties": {"mode": {"const": "img2img"}}, "required": ["mode"]},
    "then": {"required": ["init_image"], "properties": {"init_image": {"type": "string"}}},
}
