"""The model contract's checks: does each file look like the component it is named as?

Each ``check_*`` takes a session-like object (``path``, ``inputs`` and ``outputs`` as
:class:`TensorSpec`) and returns every :class:`Problem` it finds; an empty list means the
component fits. The checks share one :class:`ModelFacts` and run in dependency order (text
encoder, UNet, VAE decoder, VAE encoder, tiny decoder, time rows): the text width feeds the UNet's
check, the UNet's latent the VAE checks. :class:`~pi_axera_sd.engine.pipeline.Pipeline` raises the
first problem as a :class:`ModelError` carrying them all; ``models verify`` lists each in its row.
Both layouts (AXERA's and diffusers/optimum) are checked alike: only the file names differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pi_axera_sd.engine.contract import (
    AXERA_TIME_INPUT,
    DEEP_FEATURE,
    GUIDANCE_INPUT,
    INPAINT_UNET_CHANNELS,
    LATENT_CHANNELS,
    TEXT_ENCODER,
    TEXT_OUTPUT,
    TIME_INPUT_FILES,
    TIME_INPUT_TXT2IMG,
    TOKENIZER_FILES,
    TOKENIZER_JSON,
    TOKENS,
    UNET,
    UNET_DEEP,
    UNET_SHALLOW,
    VAE_DECODER,
    VAE_DECODER_TINY,
    VAE_ENCODER,
    VAE_ENCODER_TINY,
    VAE_FACTOR,
    UnetInputs,
    unet_inputs,
)
from pi_axera_sd.errors import MISSING, Problem
from pi_axera_sd.runtime.base import TensorSpec


class SessionLike(Protocol):
    """What the checks read of a session: where it came from and its declared tensors."""

    @property
    def path(self) -> Path: ...
    @property
    def inputs(self) -> Sequence[TensorSpec]: ...
    @property
    def outputs(self) -> Sequence[TensorSpec]: ...


@dataclass
class ModelFacts:
    """What the components say about the model, filled in as each one is checked."""

    text_width: int | None = None
    latent: tuple[int | None, int | None, int | None] | None = None  # channels, h, w
    image: tuple[int | None, int | None] | None = None
    unet: UnetInputs | None = None  # the UNet's inputs by role, once they all fit
    takes_embedding: bool | None = None  # the UNet's time input: AXERA's embedding rows or a timestep
    time_input: str | None = None  # a description of it, for reports
    time_width: int | None = None
    guidance_width: int | None = None  # the width fed to timestep_cond (LCM guidance), if any

    def as_dict(self) -> dict[str, Any]:
        return {
            "text_width": self.text_width,
            "latent": list(self.latent) if self.latent else None,
            "image": list(self.image) if self.image else None,
            "unet_time_input": self.time_input,
        }


# ---- shapes -------------------------------------------------------------------------------------


def shape_text(shape: Sequence[Any]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _known(dim: Any) -> bool:
    return isinstance(dim, int) and dim >= 0


def _fixed(dims: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if _known(d) else None for d in dims)


def _dims_match(shape: Sequence[Any], expected: Sequence[int | None]) -> bool:
    """Same rank, and every fixed dim equal where both sides fix it (dynamic axes match anything)."""
    if len(shape) != len(expected):
        return False
    return all(not (_known(a) and e is not None) or a == e for a, e in zip(shape, expected, strict=True))


def _want(expected: Sequence[int | None], letters: Sequence[str] = ()) -> str:
    """``[1,4,h,w]``-style text for an expectation, with letters where nothing is fixed yet."""
    names = iter(letters)
    return "[" + ",".join(str(e) if e is not None else next(names, "?") for e in expected) + "]"


def _tensors(s: SessionLike) -> str:
    ins = ", ".join(x.describe() for x in s.inputs)
    outs = ", ".join(x.describe() for x in s.outputs)
    return f"{ins} -> {outs}"


def _declared(s: SessionLike) -> str:
    ins = ", ".join(x.describe() for x in s.inputs)
    outs = ", ".join(x.describe() for x in s.outputs)
    return f"the file has inputs [{ins}] and outputs [{outs}]"


def _file_problem(
    component: str, s: SessionLike, expected: str, detail: str, message: str, hint: str = ""
) -> Problem:
    """A problem with the tensors the file declares (all of them are what was found)."""
    return Problem(component, str(s.path), expected, _tensors(s), detail, f"{s.path}: {message}", hint)


def _signature(component: str, s: SessionLike, role: str, expected: str, what: str = "") -> Problem:
    """The file declares tensors that are not those of ``role``."""
    detail = f"expected {expected}; got {_tensors(s)}"
    return _file_problem(
        component,
        s,
        expected,
        f"{what}: {detail}" if what else detail,
        f"expected {role}: {expected}; {_declared(s)}",
    )


def _input_problem(component: str, s: SessionLike, spec: TensorSpec, expected: str, role: str) -> Problem:
    """One input of an otherwise fitting file has the wrong shape or type."""
    return Problem(
        component,
        str(s.path),
        expected,
        spec.describe(),
        detail=f"{role} input {spec.describe()}: expected {expected}",
        message=f"{s.path}: {role} input {spec.describe()}; expected {expected}",
    )


# ---- components ---------------------------------------------------------------------------------


def check_text_encoder(s: SessionLike, facts: ModelFacts) -> list[Problem]:
    """CLIP's text encoder: input_ids [1,77] (integers) -> last_hidden_state [1,77,D]."""
    expected = f"input_ids [1,{TOKENS}] int32/int64 -> last_hidden_state [1,{TOKENS},D]"
    ids = s.inputs[0] if len(s.inputs) == 1 else None
    by_name = [o for o in s.outputs if o.name == TEXT_OUTPUT]
    hidden = by_name[0] if by_name else (s.outputs[0] if s.outputs else None)
    if (
        ids is None
        or not _dims_match(ids.shape, (1, TOKENS))
        or ids.dtype.kind not in "iu"
        or hidden is None
        or not _dims_match(hidden.shape, (1, TOKENS, None))
    ):
        return [_signature(TEXT_ENCODER, s, "a CLIP text encoder", expected)]
    facts.text_width = _fixed(hidden.shape[2:])[0]
    return []


def check_unet(s: SessionLike, facts: ModelFacts, guidance_dim: int | None = None) -> list[Problem]:
    """The UNet's inputs by role (:func:`contract.unet_inputs`), their shapes, its output, the time
    input (AXERA's embedding rows or a timestep) and the guidance embedding of LCM UNets."""
    d = facts.text_width if facts.text_width is not None else "D"
    expected = (
        f"sample [1,{LATENT_CHANNELS},h,w] (inpainting: [1,{INPAINT_UNET_CHANNELS},h,w]), "
        f"encoder_hidden_states [1,{TOKENS},{d}] and a time input "
        f"({AXERA_TIME_INPUT} [1,T] or timestep [1])"
    )
    found = unet_inputs(s.inputs)
    sample, hidden, time = found.sample, found.hidden, found.time
    if (
        not found.complete
        or sample is None
        or hidden is None
        or time is None
        or not any(
            _dims_match(sample.shape, (1, c, None, None)) for c in (LATENT_CHANNELS, INPAINT_UNET_CHANNELS)
        )
        or not _dims_match(hidden.shape, (1, TOKENS, None))
    ):
        got = [x.describe() for x in s.inputs]
        return [
            _file_problem(
                UNET,
                s,
                f"inputs {expected}",
                f"expected inputs {expected}; got {_tensors(s)}",
                f"not an SD UNet signature; expected inputs {expected}; got {got}",
            )
        ]
    problems: list[Problem] = []
    facts.unet = found
    # the latent it denoises: an inpainting UNet's extra channels are conditioning, not latent
    facts.latent = (LATENT_CHANNELS, *_fixed(sample.shape[2:]))  # type: ignore[assignment]
    width = hidden.shape[2]
    if facts.text_width is not None and _known(width) and width != facts.text_width:
        problems.append(
            _file_problem(
                UNET,
                s,
                f"encoder_hidden_states width {facts.text_width} (the text encoder's)",
                f"encoder_hidden_states width {width} != the text encoder's {facts.text_width} "
                "(files from different models)",
                f"encoder_hidden_states width {width} does not match the text encoder's "
                f"{facts.text_width}; the files come from different models",
                hint="files from different models",
            )
        )
    problems += _check_time_input(s, time, found.takes_embedding, facts)
    problems += check_guidance(s, facts, guidance_dim)
    out = s.outputs[0] if s.outputs else None
    latent = (1, *(facts.latent or (None, None, None)))
    if out is None or not _dims_match(out.shape, latent):
        want = _want(latent, "chw")
        problems.append(
            _file_problem(
                UNET,
                s,
                f"noise prediction {want}",
                f"noise prediction output {want} (same as sample); got {_tensors(s)}",
                f"expected a noise prediction output {want} (same as sample); {_declared(s)}",
            )
        )
    return problems


def _check_time_input(
    s: SessionLike, time: TensorSpec, takes_embedding: bool, facts: ModelFacts
) -> list[Problem]:
    facts.takes_embedding = takes_embedding
    if takes_embedding:  # AXERA's cut graph: one row of time_input_*.npy per step, [1,T] (or [T])
        last = time.shape[-1] if time.shape else None
        facts.time_width = last if _known(last) else None
        facts.time_input = f"AXERA time embedding {shape_text(time.shape)} (time_input_*.npy)"
        if not (_dims_match(time.shape, (1, None)) or len(time.shape) == 1):
            return [_input_problem(UNET, s, time, "[1,T]", "time embedding")]
        return []
    facts.time_input = f"timestep {time.name} {shape_text(time.shape)}"
    if len(time.shape) > 1 or time.dtype.kind not in "iuf":
        return [_input_problem(UNET, s, time, "a number, shape [1] or []", "timestep")]
    return []


def check_guidance(s: SessionLike, facts: ModelFacts, dim: int | None = None) -> list[Problem]:
    """An LCM UNet's ``timestep_cond`` (guidance embedding) must be [1,W] float, W >= 2; where W
    is dynamic, ``dim`` (diffusers' ``time_cond_proj_dim``) must say it."""
    spec = next((x for x in s.inputs if x.name == GUIDANCE_INPUT), None)
    if spec is None:
        return []
    width = spec.shape[-1] if spec.shape else None
    if len(spec.shape) != 2 or (_known(width) and width < 2) or spec.dtype.kind != "f":  # type: ignore[operator]
        return [_input_problem(UNET, s, spec, "[1,W] float", "guidance embedding")]
    facts.time_input = (
        f"{facts.time_input} + LCM guidance embedding {GUIDANCE_INPUT} {shape_text(spec.shape)}"
    )
    facts.guidance_width = width if _known(width) and width else dim  # type: ignore[assignment]
    if not facts.guidance_width:
        return [
            Problem(
                UNET,
                str(s.path),
                f"{GUIDANCE_INPUT} [1,W] with W fixed, or time_cond_proj_dim in unet/config.json",
                spec.describe(),
                detail=f"the width of {GUIDANCE_INPUT} is dynamic and no time_cond_proj_dim is known",
                message=f"{s.path}: the width of {GUIDANCE_INPUT} is dynamic and no time_cond_proj_dim "
                "is known (unet/config.json)",
                hint="unet/config.json",
            )
        ]
    return []


def check_vae_decoder(s: SessionLike, facts: ModelFacts, component: str = VAE_DECODER) -> list[Problem]:
    """The UNet's latent [1,4,h,w] -> an RGB image [1,3,8h,8w]."""
    c, h, w = facts.latent or (LATENT_CHANNELS, None, None)
    image = (1, 3, h * VAE_FACTOR if h else None, w * VAE_FACTOR if w else None)
    expected = f"latent {_want((1, c, h, w), 'hw')} -> image {_want(image, ('8h', '8w'))}"
    if len(s.inputs) != 1 or not s.outputs:
        return [_signature(component, s, "a VAE decoder", expected)]
    x, out = s.inputs[0], s.outputs[0]
    if not _dims_match(x.shape, (1, c, h, w)) or not _dims_match(out.shape, image):
        what = (
            "latent size differs from the UNet's" if facts.latent and len(x.shape) == 4 else "wrong signature"
        )
        return [_signature(component, s, "a VAE decoder", expected, what)]
    if facts.latent is None:
        facts.latent = _fixed(x.shape[1:])  # type: ignore[assignment]
    facts.image = _fixed(out.shape[2:])  # type: ignore[assignment]
    return []


def check_tiny_decoder(s: SessionLike, facts: ModelFacts) -> list[Problem]:
    """The TAESD decoder must take the UNet's latent like the full one (the engine swaps them)."""
    return check_vae_decoder(s, dataclasses.replace(facts), VAE_DECODER_TINY)  # keeps the facts as they are


def check_vae_encoder(s: SessionLike, facts: ModelFacts) -> list[Problem]:
    """An RGB image -> mean||logvar [1,8,h,w] (or, in older optimum exports, a sampled latent)."""
    c, h, w = facts.latent or (LATENT_CHANNELS, None, None)
    size = facts.image or (h * VAE_FACTOR if h else None, w * VAE_FACTOR if w else None)
    moments = (1, 2 * c if c else None, h, w)
    expected = f"image {_want((1, 3, *size), ('H', 'W'))} -> mean||logvar {_want(moments, ('H/8', 'W/8'))}"
    if len(s.inputs) != 1 or not s.outputs:
        return [_signature(VAE_ENCODER, s, "a VAE encoder", expected)]
    sampled = (1, c, h, w)
    out = s.outputs[0].shape
    if not _dims_match(s.inputs[0].shape, (1, 3, *size)) or not (
        _dims_match(out, moments) or (c is not None and _dims_match(out, sampled))
    ):
        return [_signature(VAE_ENCODER, s, "a VAE encoder", expected)]
    return []


def check_tiny_encoder(s: SessionLike, facts: ModelFacts) -> list[Problem]:
    """TAESD's encoder: an RGB image -> the UNet's latent itself (no moments, no scaling)."""
    c, h, w = facts.latent or (LATENT_CHANNELS, None, None)
    size = facts.image or (h * VAE_FACTOR if h else None, w * VAE_FACTOR if w else None)
    expected = f"image {_want((1, 3, *size), ('H', 'W'))} -> latent {_want((1, c, h, w), ('H/8', 'W/8'))}"
    if (
        len(s.inputs) != 1
        or not s.outputs
        or not _dims_match(s.inputs[0].shape, (1, 3, *size))
        or not _dims_match(s.outputs[0].shape, (1, c, h, w))
    ):
        return [_signature(VAE_ENCODER_TINY, s, "a TAESD encoder", expected)]
    return []


def check_deepcache_pair(deep: SessionLike, shallow: SessionLike) -> list[Problem]:
    """DeepCache (engine.deepcache): the deep UNet also returns DEEP_FEATURE; the shallow graph
    takes the deep UNet's inputs plus that feature and returns one output."""
    deep_outputs = [spec.name for spec in deep.outputs]
    if DEEP_FEATURE not in deep_outputs:
        expected = f"a second output {DEEP_FEATURE!r}"
        return [
            _file_problem(
                UNET_DEEP, deep, expected, f"expected {expected}", f"expected {expected}; {_declared(deep)}"
            )
        ]
    wanted = sorted({spec.name for spec in deep.inputs} | {DEEP_FEATURE})
    found = sorted(spec.name for spec in shallow.inputs)
    if found != wanted or len(shallow.outputs) != 1:
        expected = f"inputs {wanted} and one output"
        hint = "re-export both files together (models export --deep-cache)"
        return [
            _file_problem(
                UNET_SHALLOW,
                shallow,
                expected,
                f"expected {expected}",
                f"expected {expected}; {_declared(shallow)} ({hint})",
                hint,
            )
        ]
    return []


def check_sessions(
    sessions: Mapping[str, SessionLike | None], facts: ModelFacts, guidance_dim: int | None = None
) -> list[Problem]:
    """Every component's check, in the order the facts flow (text encoder, UNet, VAE decoder, VAE
    encoder, tiny decoder, tiny encoder); ``sessions`` maps component names to sessions, None (or
    no key) where a component is absent or could not be opened."""
    checks: tuple[tuple[str, Callable[[SessionLike, ModelFacts], list[Problem]]], ...] = (
        (TEXT_ENCODER, check_text_encoder),
        (UNET, lambda s, f: check_unet(s, f, guidance_dim)),
        (VAE_DECODER, check_vae_decoder),
        (VAE_ENCODER, check_vae_encoder),
        (VAE_DECODER_TINY, check_tiny_decoder),
        (VAE_ENCODER_TINY, check_tiny_encoder),
    )
    problems: list[Problem] = []
    for component, check in checks:
        session = sessions.get(component)
        if session is not None:
            problems += check(session, facts)
    return problems


def check_time_rows(
    component: str, rows: np.ndarray | None, facts: ModelFacts, min_rows: int, file: Path | None = None
) -> list[Problem]:
    """AXERA's ``time_input_*.npy``: at least ``min_rows`` float rows as wide as the UNet's time
    input. Needed (txt2img) only where the UNet takes the embedding; unused where it takes a timestep."""
    name = str(file) if file is not None else TIME_INPUT_FILES[component]
    if facts.takes_embedding is False:  # None: the UNet is unknown; the rows are checked alone
        return []
    if rows is None:
        if not facts.takes_embedding or component != TIME_INPUT_TXT2IMG:
            return []
        time_name = facts.unet.time.name if facts.unet and facts.unet.time else AXERA_TIME_INPUT
        return [
            Problem(
                component,
                None,
                f"{TIME_INPUT_FILES[component]} (the UNet takes the time embedding {time_name})",
                "no file",
                detail=f"the UNet takes the time embedding; {TIME_INPUT_FILES[component]} is required",
                message=f"the UNet takes the time embedding ({time_name}); "
                f"{TIME_INPUT_FILES[component]} is required",
                kind=MISSING,
            )
        ]
    width = facts.time_width
    if (
        rows.ndim == 2
        and rows.shape[0] >= min_rows
        and rows.dtype.kind == "f"
        and not (width and rows.shape[1] != width)
    ):
        return []
    want = f"[{min_rows}+,{width if width is not None else 'T'}] float"
    got = list(rows.shape)
    return [
        Problem(
            component,
            name,
            want,
            f"{got} {rows.dtype.name}",
            detail=f"expected {want} (one row per timestep, T = the UNet's time input); got {got}",
            message=f"{name} has shape {got}; expected [{min_rows}, {width if width is not None else 'T'}] "
            f"float rows (one per timestep, as wide as the UNet's time input)",
        )
    ]


def missing_file(component: str, path: Path, what: str, expected: str = "") -> Problem:
    """A file the layout names for ``component`` that is not there (``what``: its name for users)."""
    detail = f"{what} {path}" + (f" ({expected})" if expected else "")
    return Problem(
        component, str(path), expected or "a file", "no file", detail, f"{detail} is missing", kind=MISSING
    )


def tokenizer_form(folder: Path) -> str | None:
    """The CLIP tokenizer form ``folder`` holds: ``tokenizer.json`` (preferred when both are there),
    else the ``vocab.json`` + ``merges.txt`` pair, else None."""
    if (folder / TOKENIZER_JSON).is_file():
        return TOKENIZER_JSON
    if all((folder / name).is_file() for name in TOKENIZER_FILES):
        return " + ".join(TOKENIZER_FILES)
    return None


TOKENIZER_FORMS = f"{TOKENIZER_JSON}, or {' and '.join(TOKENIZER_FILES)}"


def check_tokenizer_files(folder: Path) -> list[Problem]:
    """A CLIP tokenizer in the folder: ``tokenizer.json``, or the BPE pair."""
    if tokenizer_form(folder) is not None:
        return []
    return [
        Problem(
            "tokenizer",
            str(folder),
            TOKENIZER_FORMS,
            "no tokenizer files",
            detail=f"neither {TOKENIZER_FORMS} found in {folder}",
            message=f"{folder}: the CLIP tokenizer needs {TOKENIZER_FORMS}; none is there",
            kind=MISSING,
        )
    ]


def check_token_ids(ids: np.ndarray, folder: Path) -> list[Problem]:
    """A prompt must become exactly :data:`TOKENS` ids (CLIP's context length)."""
    if ids.shape == (TOKENS,):
        return []
    return [
        Problem(
            "tokenizer",
            str(folder),
            f"{TOKENS} token ids",
            str(list(ids.shape)),
            detail=f"expected {TOKENS} token ids per prompt; got {list(ids.shape)}",
            message=f"{folder}: the tokenizer makes {list(ids.shape)} ids per prompt; expected {TOKENS}",
        )
    ]
