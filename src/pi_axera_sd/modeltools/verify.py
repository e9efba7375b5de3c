"""Check a model folder against what the engine expects, component by component.

``verify_model`` opens every session of the layout the engine would load and compares its
inputs and outputs with the SD1.5-LCM signatures (AXERA's cut UNet or a plain one), checks that
the components agree with each other (text width, latent and image sizes), and checks the
``manifest.json`` sizes and sha256 when the folder has one. A component that cannot be opened
(a ``.axmodel`` without pyaxengine, a broken file) is reported in its row; nothing raises.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi_axera_sd.engine.contract import (
    MANIFEST,
    TEXT_ENCODER,
    TIME_INPUT_IMG2IMG,
    TIME_INPUT_TXT2IMG,
    TOKENIZER,
    UNET,
    UNET_DEEP,
    UNET_SHALLOW,
    VAE_DECODER,
    VAE_DECODER_TINY,
    VAE_ENCODER,
    VAE_ENCODER_TINY,
)
from pi_axera_sd.engine.contract_checks import (
    ModelFacts,
    check_deepcache_pair,
    check_sessions,
    check_time_rows,
    check_token_ids,
    check_tokenizer_files,
    tokenizer_form,
)
from pi_axera_sd.engine.layout import ModelLayout, resolve_layout
from pi_axera_sd.errors import MISMATCH, MISSING, PiAxeraError, Problem, RuntimeUnavailable
from pi_axera_sd.fileio import sha256_file
from pi_axera_sd.runtime import RuntimeOptions, Session, TensorSpec, open_session, runtime_for

# a row's state: the contract's problem kinds (MISMATCH, MISSING) and what opening a file can say
OK, ABSENT, NEEDS_AXENGINE, UNAVAILABLE, ERROR = (
    "OK",
    "absent",
    "needs pyaxengine",
    "runtime unavailable",
    "error",
)
PASSING = (OK, ABSENT)
Facts = ModelFacts  # what the report says about the model


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

    def add(self, problems: Sequence[Problem]) -> None:
        """The contract's problems with this row's component, each in the row's words."""
        for problem in problems:
            self.fail(problem.detail, problem.kind)

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
            "note": self.note,
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


def _check_time_rows(row: Row, path: Path | None, facts: Facts, min_rows: int) -> None:
    """Read ``time_input_*.npy`` into ``row`` and check its rows against the UNet's time input."""
    embedding = facts.takes_embedding  # True: AXERA's cut UNet; False: a timestep; None: unknown
    if path is None:
        row.add(check_time_rows(row.component, None, facts, min_rows))
        if row.ok:
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
    row.add(check_time_rows(row.component, rows, facts, min_rows, path))


def _check_tokenizer(row: Row, layout: ModelLayout) -> None:
    row.runtime = "tokenizers"
    row.add(check_tokenizer_files(layout.tokenizer_dir))
    if not row.ok:
        return
    form = tokenizer_form(layout.tokenizer_dir)
    row.note = f"from {form}"
    try:
        from pi_axera_sd.engine.tokenizer import ClipTokenizer

        ids = ClipTokenizer(layout.tokenizer_dir).encode("a photo of a cat")
    except Exception as exc:  # tokenizers raises its own exception types on a bad vocab
        row.fail(f"{form} does not load: {exc}", ERROR)
        return
    row.outputs = (TensorSpec("input_ids", tuple(int(n) for n in ids.shape), ids.dtype),)
    row.add(check_token_ids(ids, layout.tokenizer_dir))


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

    tok = Row(TOKENIZER, layout.tokenizer_dir)
    _check_tokenizer(tok, layout)
    rows = [tok]
    files = {
        TEXT_ENCODER: layout.text_encoder,
        UNET: layout.unet,
        VAE_DECODER: layout.vae_decoder,
        VAE_ENCODER: layout.vae_encoder,
    }
    optional = {  # a row only where the folder has one
        VAE_DECODER_TINY: layout.vae_decoder_tiny,
        VAE_ENCODER_TINY: layout.vae_encoder_tiny,
        UNET_DEEP: layout.unet_deep,
        UNET_SHALLOW: layout.unet_shallow,
    }
    files.update({name: path for name, path in optional.items() if path is not None})
    sessions: dict[str, Session | None] = {}
    for name, path in files.items():
        row = Row(name, path)
        if path is None:
            row.state, row.note = ABSENT, "optional; img2img disabled"
        sessions[name] = _open(row, path, options)
        rows.append(row)
    dim = layout.manifest.get("time_cond_proj_dim")  # diffusers' unet/config.json, where it has one
    problems = check_sessions(sessions, facts, dim if isinstance(dim, int) else None)
    deep, shallow = sessions.get(UNET_DEEP), sessions.get(UNET_SHALLOW)
    if deep is not None and shallow is not None:
        problems += check_deepcache_pair(deep, shallow)
    for row in rows[1:]:
        row.add([p for p in problems if p.component == row.component])

    t2i = Row(TIME_INPUT_TXT2IMG, layout.time_input_txt2img)
    _check_time_rows(t2i, layout.time_input_txt2img, facts, len(layout.timesteps))
    i2i = Row(TIME_INPUT_IMG2IMG, layout.time_input_img2img)
    _check_time_rows(i2i, layout.time_input_img2img, facts, 1)
    rows += [t2i, i2i]

    manifest = check_manifest(root, hashes=check_hashes, manifest=layout.manifest or None)
    return VerifyReport(root, rows, facts, manifest)
