"""Check a model folder against what the engine expects, component by component.

``verify_model`` opens every session of the layout the engine would load and compares its
inputs and outputs with the SD1.5-LCM signatures (AXERA's cut UNet or a plain one), checks that
the components agree with each other (text width, latent and image sizes), and checks the
``manifest.json`` sizes and sha256 when the folder has one. A component that cannot be opened
(a ``.axmodel`` without pyaxengine, a broken file) is reported in its row; nothing raises.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi_axera_sd.engine.contract import (
    AXERA_TIME_INPUT,
    GUIDANCE_INPUT,
    LATENT_CHANNELS,
    MANIFEST,
    TOKENS,
    VAE_FACTOR,
    unet_inputs,
)
from pi_axera_sd.engine.layout import ModelLayout, resolve_layout
from pi_axera_sd.errors import PiAxeraError, RuntimeUnavailable
from pi_axera_sd.fileio import sha256_file
from pi_axera_sd.runtime import RuntimeOptions, Session, TensorSpec, open_session, runtime_for

OK, ABSENT, MISMATCH, MISSING, NEEDS_AXENGINE, UNAVAILABLE, ERROR = (
    "OK",
    "absent",
    "mismatch",
    "missing",
    "needs pyaxengine",
    "runtime unavailable",
    "error",
)
PASSING = (OK, ABSENT)


def shape_text(shape: Sequence[Any]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _known(dim: Any) -> bool:
    return isinstance(dim, int) and dim >= 0


def _dims_match(shape: Sequence[Any], expected: Sequence[int | None]) -> bool:
    """Same rank, and every fixed dim equal where both sides fix it (dynamic axes match anything)."""
    if len(shape) != len(expected):
        return False
    return all(not (_known(a) and e is not None) or a == e for a, e in zip(shape, expected, strict=True))


def _want(expected: Sequence[int | None], letters: Sequence[str] = ()) -> str:
    """``[1,4,h,w]``-style text for an expectation, with letters where nothing is fixed yet."""
    names = iter(letters)
    return "[" + ",".join(str(e) if e is not None else next(names, "?") for e in expected) + "]"


# ---- results ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a component, the file found for it, what it declares, its status."""

    component: str
    file: Path | None
    runtime: str = "-"
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    state: str = OK
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.state in PASSING

    def fail(self, problem: str, state: str = MISMATCH) -> None:
        if self.state in PASSING:
            self.state = state
        self.problems.append(problem)

    def status(self) -> str:
        if self.state in PASSING:
            return self.state + (f" ({self.note})" if self.note else "")
        if self.state == NEEDS_AXENGINE:
            return f"{NEEDS_AXENGINE} (install hint below)"  # printed once, not in every row
        return f"{self.state}: " + "; ".join(self.problems)

    def as_dict(self, root: Path) -> dict[str, Any]:
        def spec(s: TensorSpec) -> dict[str, Any]:
            return {"name": s.name, "shape": list(s.shape), "dtype": s.dtype.name}

        return {
            "component": self.component,
            "file": _rel(self.file, root),
            "runtime": self.runtime,
            "inputs": [spec(s) for s in self.inputs],
            "outputs": [spec(s) for s in self.outputs],
            "ok": self.ok,
            "state": self.state,
            "status": self.status(),
            "problems": list(self.problems),
        }


@dataclass
class ManifestCheck:
    path: Path
    checked: int = 0
    hashed: bool = True
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        what = "sizes and sha256" if self.hashed else "sizes (sha256 skipped)"
        if self.ok:
            return f"{self.checked} files, {what} match"
        return f"{len(self.problems)} of {self.checked} files differ: " + "; ".join(self.problems)


@dataclass
class Facts:
    """What the components say about the model, filled in as each one is checked."""

    text_width: int | None = None
    latent: tuple[int | None, int | None, int | None] | None = None  # channels, h, w
    image: tuple[int | None, int | None] | None = None
    time_input: str | None = None  # "embedding [1,T]" or "timestep"
    time_width: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "text_width": self.text_width,
            "latent": list(self.latent) if self.latent else None,
            "image": list(self.image) if self.image else None,
            "unet_time_input": self.time_input,
        }


@dataclass
class VerifyReport:
    root: Path
    rows: list[Row]
    facts: Facts
    manifest: ManifestCheck | None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows) and (self.manifest is None or self.manifest.ok)

    def as_dict(self) -> dict[str, Any]:
        manifest = None
        if self.manifest is not None:
            manifest = {
                "checked": self.manifest.checked,
                "sha256": self.manifest.hashed,
                "ok": self.manifest.ok,
                "problems": self.manifest.problems,
            }
        return {
            "root": str(self.root),
            "ok": self.ok,
            "components": [r.as_dict(self.root) for r in self.rows],
            "model": self.facts.as_dict(),
            "manifest": manifest,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def table(self) -> str:
        header = ("component", "file", "runtime", "inputs", "outputs", "status")
        cells = [
            (
                [r.component],
                [_rel(r.file, self.root) or "-"],
                [r.runtime],
                [s.describe() for s in r.inputs] or ["-"],
                [s.describe() for s in r.outputs] or ["-"],
                [r.status()],
            )
            for r in self.rows
        ]
        widths = [
            max([len(header[i])] + [len(line) for row in cells for line in row[i]])
            for i in range(len(header) - 1)
        ]

        def line(parts: Sequence[str]) -> str:
            padded = [p.ljust(w) for p, w in zip(parts[:-1], widths, strict=True)]
            return "  ".join([*padded, parts[-1]]).rstrip()

        out = [line(header), line(["-" * w for w in widths] + ["-" * 6])]
        for row in cells:
            height = max(len(c) for c in row)
            for i in range(height):
                out.append(line([c[i] if i < len(c) else "" for c in row]))
        return "\n".join(out)

    def render(self) -> str:
        f = self.facts
        lines = [f"model folder: {self.root}", "", self.table(), ""]
        facts = []
        if f.text_width is not None:
            facts.append(f"text width {f.text_width}")
        if f.latent is not None:
            facts.append("latent " + "x".join("?" if d is None else str(d) for d in f.latent))
        if f.image is not None:
            facts.append("image " + "x".join("?" if d is None else str(d) for d in f.image))
        if f.time_input:
            facts.append(f"UNet time input: {f.time_input}")
        if facts:
            lines.append("model: " + ", ".join(facts))
        if self.manifest is not None:
            lines.append(f"manifest.json: {self.manifest.summary()}")
        if any(r.state == NEEDS_AXENGINE for r in self.rows):
            from pi_axera_sd.runtime.axengine import INSTALL_HINT

            lines.append(f"pyaxengine: .axmodel files run on the AX650N NPU. {INSTALL_HINT}")
        failed = [r.component for r in self.rows if not r.ok]
        if self.manifest is not None and not self.manifest.ok:
            failed.append("manifest")
        lines.append("result: OK" if not failed else f"result: FAILED ({', '.join(failed)})")
        return "\n".join(lines)


def _rel(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# ---- manifest -----------------------------------------------------------------------------------


def check_manifest(
    root: Path, *, hashes: bool = True, manifest: dict[str, Any] | None = None
) -> ManifestCheck | None:
    """Compare every file ``manifest.json`` lists with its recorded size and sha256; None without one."""
    path = Path(root) / MANIFEST
    if manifest is None:
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            return ManifestCheck(path, problems=[f"unreadable: {exc}"])
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        return None  # a manifest without a file list (not ours): nothing to compare
    check = ManifestCheck(path, hashed=hashes)
    for rel, info in sorted(files.items()):
        target = Path(root) / rel
        check.checked += 1
        if not target.is_file():
            check.problems.append(f"{rel} missing")
            continue
        size = target.stat().st_size
        if isinstance(info, dict) and info.get("bytes") is not None and size != int(info["bytes"]):
            check.problems.append(f"{rel} has {size} bytes, manifest says {info['bytes']}")
            continue
        expected = info.get("sha256") if isinstance(info, dict) else None
        if hashes and expected:
            actual = sha256_file(target)
            if actual != expected:
                check.problems.append(f"{rel} sha256 {actual[:12]}… != manifest {str(expected)[:12]}…")
    return check


# ---- sessions -----------------------------------------------------------------------------------


def _open(row: Row, path: Path | None, options: RuntimeOptions) -> Session | None:
    """Open ``path`` into ``row``; failures become the row's status, never an exception."""
    if path is None:
        return None
    row.runtime = runtime_for(path, options)
    if not path.is_file():
        row.fail(f"{path} not found", MISSING)
        return None
    try:
        session = open_session(path, options)
    except RuntimeUnavailable as exc:
        from pi_axera_sd.runtime.axengine import INSTALL_HINT
        from pi_axera_sd.runtime.faults import AxengineMissing

        if isinstance(exc, AxengineMissing):  # a missing driver or device gets its own message
            row.fail(f".axmodel files run on the AX650N NPU. {INSTALL_HINT}", NEEDS_AXENGINE)
        else:
            row.fail(str(exc), UNAVAILABLE)
        return None
    except PiAxeraError as exc:
        row.fail(str(exc), ERROR)
        return None
    except Exception as exc:  # a runtime's own error type for a file it cannot read
        row.fail(f"{type(exc).__name__}: {exc}", ERROR)
        return None
    row.runtime = f"{session.runtime}/{session.provider.removesuffix('ExecutionProvider')}"
    row.inputs, row.outputs = session.inputs, session.outputs
    return session


def _got(session: Session) -> str:
    ins = ", ".join(s.describe() for s in session.inputs)
    outs = ", ".join(s.describe() for s in session.outputs)
    return f"got {ins} -> {outs}"


def _check_text_encoder(row: Row, s: Session, facts: Facts) -> None:
    expected = f"input_ids [1,{TOKENS}] int32/int64 -> last_hidden_state [1,{TOKENS},D]"
    ids = s.inputs[0] if len(s.inputs) == 1 else None
    by_name = [o for o in s.outputs if o.name == "last_hidden_state"]
    hidden = by_name[0] if by_name else (s.outputs[0] if s.outputs else None)
    if (
        ids is None
        or not _dims_match(ids.shape, (1, TOKENS))
        or ids.dtype.kind not in "iu"
        or hidden is None
        or not _dims_match(hidden.shape, (1, TOKENS, None))
    ):
        row.fail(f"expected {expected}; {_got(s)}")
        return
    width = hidden.shape[2]
    facts.text_width = width if _known(width) else None


def _check_unet(row: Row, s: Session, facts: Facts) -> None:
    d = facts.text_width if facts.text_width is not None else "D"
    expected = (
        f"sample [1,{LATENT_CHANNELS},h,w], encoder_hidden_states [1,{TOKENS},{d}] and a time input "
        f"({AXERA_TIME_INPUT} [1,T] or timestep [1])"
    )
    found = unet_inputs(s.inputs)  # the guidance embedding is checked by _check_guidance
    sample, hidden, time = found.sample, found.hidden, None if found.unknown else found.time
    if (
        sample is None
        or hidden is None
        or time is None
        or not _dims_match(sample.shape, (1, LATENT_CHANNELS, None, None))
        or not _dims_match(hidden.shape, (1, TOKENS, None))
    ):
        row.fail(f"expected inputs {expected}; {_got(s)}")
        return
    facts.latent = tuple(d if _known(d) else None for d in sample.shape[1:])  # type: ignore[assignment]
    width = hidden.shape[2]
    if facts.text_width is not None and _known(width) and width != facts.text_width:
        row.fail(
            f"encoder_hidden_states width {width} != the text encoder's {facts.text_width} "
            "(files from different models)"
        )
    last = time.shape[-1] if time.shape else 1
    if found.takes_embedding and (time.name == AXERA_TIME_INPUT or len(time.shape) == 2):
        if not _dims_match(time.shape, (1, None)):
            row.fail(f"time embedding input {time.describe()}: expected [1,T]")
        facts.time_width = last if _known(last) else None
        facts.time_input = f"AXERA time embedding {shape_text(time.shape)} (time_input_*.npy)"
    else:
        if len(time.shape) > 1 or time.dtype.kind not in "iuf":
            row.fail(f"timestep input {time.describe()}: expected a number, shape [1] or []")
        facts.time_input = f"timestep {time.name} {shape_text(time.shape)}"
    _check_guidance(row, s, facts)
    out = s.outputs[0] if s.outputs else None
    if out is None or not _dims_match(out.shape, (1, *(facts.latent or (None, None, None)))):
        want = _want((1, *(facts.latent or (None, None, None))), "chw")
        row.fail(f"noise prediction output {want} (same as sample); {_got(s)}")


def _check_guidance(row: Row, s: Session, facts: Facts) -> None:
    """An LCM UNet's ``timestep_cond`` (guidance embedding) must be [1,W], W >= 2."""
    spec = next((x for x in s.inputs if x.name == GUIDANCE_INPUT), None)
    if spec is None:
        return
    width = spec.shape[-1] if spec.shape else None
    if len(spec.shape) != 2 or (_known(width) and width < 2) or spec.dtype.kind != "f":  # type: ignore[operator]
        row.fail(f"guidance embedding input {spec.describe()}: expected [1,W] float")
        return
    facts.time_input = (
        f"{facts.time_input} + LCM guidance embedding {GUIDANCE_INPUT} {shape_text(spec.shape)}"
    )


def _check_vae_decoder(row: Row, s: Session, facts: Facts) -> None:
    c, h, w = facts.latent or (LATENT_CHANNELS, None, None)
    image = (1, 3, h * VAE_FACTOR if h else None, w * VAE_FACTOR if w else None)
    expected = f"latent {_want((1, c, h, w), 'hw')} -> image {_want(image, ('8h', '8w'))}"
    if len(s.inputs) != 1 or not s.outputs:
        row.fail(f"expected {expected}; {_got(s)}")
        return
    x, out = s.inputs[0], s.outputs[0]
    if not _dims_match(x.shape, (1, c, h, w)) or not _dims_match(out.shape, image):
        what = (
            "latent size differs from the UNet's" if facts.latent and len(x.shape) == 4 else "wrong signature"
        )
        row.fail(f"{what}: expected {expected}; {_got(s)}")
        return
    if facts.latent is None:
        facts.latent = tuple(d if _known(d) else None for d in x.shape[1:])  # type: ignore[assignment]
    facts.image = tuple(d if _known(d) else None for d in out.shape[2:])  # type: ignore[assignment]


def _check_tiny_decoder(row: Row, s: Session, facts: Facts) -> None:
    """The TAESD decoder must take the UNet's latent like the full one (the engine loads it so)."""
    _check_vae_decoder(row, s, dataclasses.replace(facts))  # its image size must not change the facts


def _check_vae_encoder(row: Row, s: Session, facts: Facts) -> None:
    c, h, w = facts.latent or (LATENT_CHANNELS, None, None)
    size = facts.image or (h * VAE_FACTOR if h else None, w * VAE_FACTOR if w else None)
    moments = (1, 2 * c if c else None, h, w)
    expected = f"image {_want((1, 3, *size), ('H', 'W'))} -> mean||logvar {_want(moments, ('H/8', 'W/8'))}"
    if len(s.inputs) != 1 or not s.outputs:
        row.fail(f"expected {expected}; {_got(s)}")
        return
    sampled = (1, c, h, w)  # older optimum exports return latent_sample, drawn inside the graph
    out = s.outputs[0].shape
    if not _dims_match(s.inputs[0].shape, (1, 3, *size)) or not (
        _dims_match(out, moments) or (c is not None and _dims_match(out, sampled))
    ):
        row.fail(f"expected {expected}; {_got(s)}")


def _check_time_rows(
    row: Row, path: Path | None, facts: Facts, min_rows: int, embedding: bool | None
) -> None:
    """``embedding``: the UNet takes the time embedding (True), the timestep (False), or unknown (None)."""
    if path is None:
        if embedding and row.component == "time_input_txt2img":
            row.fail("the UNet takes the time embedding; time_input_txt2img.npy is required", MISSING)
        else:
            row.state, row.note = ABSENT, "not needed" if embedding is False else "optional"
        return
    row.runtime = "numpy"
    if not path.is_file():
        row.fail(f"{path} not found", MISSING)
        return
    try:
        rows = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        row.fail(f"unreadable .npy: {exc}", ERROR)
        return
    row.outputs = (TensorSpec("rows", tuple(int(n) for n in rows.shape), rows.dtype),)
    if embedding is False:
        row.note = "unused: the UNet takes the timestep"
        return
    width = facts.time_width
    expected = f"[{min_rows}+,{width if width is not None else 'T'}] float"
    if (
        rows.ndim != 2
        or rows.shape[0] < min_rows
        or rows.dtype.kind != "f"
        or (width and rows.shape[1] != width)
    ):
        row.fail(
            f"expected {expected} (one row per timestep, T = the UNet's time input); got {list(rows.shape)}"
        )


def _check_tokenizer(row: Row, layout: ModelLayout) -> None:
    row.runtime = "tokenizers"
    missing = [n for n in ("vocab.json", "merges.txt") if not (layout.tokenizer_dir / n).is_file()]
    if missing:
        row.fail(f"{', '.join(missing)} not found in {layout.tokenizer_dir}", MISSING)
        return
    try:
        from pi_axera_sd.engine.tokenizer import ClipTokenizer

        ids = ClipTokenizer(layout.tokenizer_dir).encode("a photo of a cat")
    except Exception as exc:  # tokenizers raises its own exception types on a bad vocab
        row.fail(f"CLIP BPE files do not load: {exc}", ERROR)
        return
    row.outputs = (TensorSpec("input_ids", tuple(int(n) for n in ids.shape), ids.dtype),)
    if ids.shape != (TOKENS,):
        row.fail(f"expected {TOKENS} token ids per prompt; got {list(ids.shape)}")


# ---- entry point ----------------------------------------------------------------------------------


def prefers_axmodel(runtime: str) -> bool:
    """Which file the engine would take where both ``.onnx`` and ``.axmodel`` exist (as config does)."""
    if runtime == "axengine":
        return True
    if runtime != "auto":
        return False
    from pi_axera_sd.runtime.axengine import axengine_available

    return axengine_available()


def verify_model(
    root: str | Path,
    options: RuntimeOptions | None = None,
    *,
    check_hashes: bool = True,
    layout: ModelLayout | None = None,
) -> VerifyReport:
    """Open and check every component of the model in ``root``; never raises for a bad model."""
    options = options or RuntimeOptions()
    root = Path(root)
    facts = Facts()
    try:
        layout = layout or resolve_layout(root, prefer_axmodel=prefers_axmodel(options.runtime))
    except PiAxeraError as exc:  # an unreadable manifest.json: the layout cannot be resolved
        return VerifyReport(root, [], facts, ManifestCheck(root / MANIFEST, problems=[str(exc)]))

    tok = Row("tokenizer", layout.tokenizer_dir)
    _check_tokenizer(tok, layout)
    rows = [tok]
    sessions: dict[str, Session | None] = {}
    checks = {
        "text_encoder": (layout.text_encoder, _check_text_encoder),
        "unet": (layout.unet, _check_unet),
        "vae_decoder": (layout.vae_decoder, _check_vae_decoder),
        "vae_encoder": (layout.vae_encoder, _check_vae_encoder),
    }
    if layout.vae_decoder_tiny is not None:  # optional; a row only where the folder has one
        checks["vae_decoder_tiny"] = (layout.vae_decoder_tiny, _check_tiny_decoder)
    for name, (path, _) in checks.items():
        row = Row(name, path)
        if path is None:
            row.state, row.note = ABSENT, "optional; img2img disabled"
        sessions[name] = _open(row, path, options)
        rows.append(row)
    # check in dependency order: the text width feeds the UNet check, the latent the VAE checks
    for row in rows[1:]:
        session = sessions[row.component]
        if session is not None:
            checks[row.component][1](row, session, facts)

    embedding = None if facts.time_input is None else facts.time_input.startswith("AXERA")
    t2i = Row("time_input_txt2img", layout.time_input_txt2img)
    _check_time_rows(t2i, layout.time_input_txt2img, facts, len(layout.timesteps), embedding)
    i2i = Row("time_input_img2img", layout.time_input_img2img)
    _check_time_rows(i2i, layout.time_input_img2img, facts, 1, embedding)
    rows += [t2i, i2i]

    manifest = check_manifest(root, hashes=check_hashes, manifest=layout.manifest or None)
    return VerifyReport(root, rows, facts, manifest)
