"""docs/configuration.md, generated from :class:`~pi_axera_sd.config.Settings` as the flags are.

For each setting: its environment variable (:func:`~pi_axera_sd.cli.settings_flags.env_name`), the
flag ``pi-axera-sd serve`` gives it (read from the real parser), the default, the allowed values
(``Literal`` choices, ``ge``/``gt``/``le`` bounds, the validators' rules) and a one-line meaning: the
field's ``description`` when it has one, else :data:`MEANINGS`, else the comment beside (or above)
the field in ``config.py``. Sections follow the ``# ---- name ----`` comments of ``config.py``.

``python scripts/configuration_doc.py > docs/configuration.md`` writes the file; tests/unit/test_docs.py
fails while the file differs from :func:`render_configuration`.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from pi_axera_sd import config
from pi_axera_sd.cli.settings_flags import base_type, env_name
from pi_axera_sd.config import PREFIX, Settings
from pi_axera_sd.defaults import RANDN_ALIASES

REGENERATE = "python scripts/configuration_doc.py > docs/configuration.md"

# One line per setting, in words a user needs (links are relative to docs/).
MEANINGS: dict[str, str] = {
    # models and runtimes
    "models_dir": "The model folder, in any layout of [models.md](models.md#model-layouts). Only the "
    "default `./models` is created (by the first-run download); any other folder must exist (else exit 2).",
    "text_model_dir": "Folder of `tokenizer/` and `text_encoder/` (or `sd15_text_encoder_sim.*` at its "
    "root); CLIP towers at its root are found too (the original service's place).",
    "text_encoder_model": "One text encoder file (`.onnx` or `.axmodel`) instead of the model folder's.",
    "unet_model": "One UNet file (`.onnx` or `.axmodel`) instead of the model folder's.",
    "vae_decoder_model": "One VAE decoder file (`.onnx` or `.axmodel`) instead of the model folder's.",
    "vae_encoder_model": "One VAE encoder file (`.onnx` or `.axmodel`, img2img only) instead of the "
    "model folder's.",
    "time_input_txt2img": "The time-embedding rows (`silu(time_embedding(t))`, [4,1280]) of the UNet "
    "cut after its time embedding, instead of the model folder's.",
    "time_input_img2img": "Accepted for the original service's sake and not read: img2img takes the "
    "matching rows of the txt2img file, so a stale path is a warning, never a start-up failure.",
    "runtime": "What runs the models. `auto`: a component's `.axmodel` when an NPU is usable through "
    "pyaxengine, else OpenVINO for `.onnx` on the CPU when it is installed, else ONNX Runtime "
    "(see [models.md](models.md#runtimes)).",
    "device": "ONNX Runtime's device; `cuda` needs onnxruntime-gpu and keeps `auto` on ONNX Runtime.",
    "threads": "CPU threads per session; 0 = all cores.",
    "ax_provider": "pyaxengine's provider: `AxEngineExecutionProvider` on an AX650N board, "
    "`AXCLRTExecutionProvider` on an M.2 card.",
    "precision": "OpenVINO's inference precision for the SD models (its `INFERENCE_PRECISION_HINT`). "
    "Unset: OpenVINO's choice, BF16 where the CPU has it. `f32` forces FP32 (ONNX Runtime's images); "
    "`f16` is passed on as asked, and whether the CPU runs FP16 is OpenVINO's decision (not measured "
    "here). The CLIP towers have their own setting, `PI_AXERA_SD_CLIP_PRECISION`.",
    "variant": "`int8`: load `<component>.int8.xml` (OpenVINO) for the UNet, the VAE decoder and "
    "encoder and the DeepCache pair where present (made by `pi-axera-sd models quantize`); a missing "
    "file is a warning at start and the FP32 file runs. INT8 costs quality (see [speed.md](speed.md)), "
    "so it is never chosen on its own.",
    "openvino_cache": "Keep OpenVINO's compiled models, so a restart imports them instead of compiling "
    "again; an unwritable folder is a warning and no cache.",
    "openvino_cache_dir": "Where those compiled models go (one folder per model file, keyed by its size "
    "and time); under systemd the unit's state directory.",
    "openvino_release_mapped": "Once OpenVINO has compiled a model, give back the pages of the model "
    "file (and cached blob) it read: it keeps its own repacked copy, so they would count twice "
    "(see [speed.md](speed.md#start-up-and-memory-of-serve)).",
    "npu_device": "The M.2 card (AXCL device id) this instance uses, passed to pyaxengine as "
    '`provider_options=[{"device_id": N}]`; ignored with a warning on an AX650N board.',
    "npu_wait_s": "At start, how long to wait for an NPU whose driver is installed but not up yet "
    "(`/ready` 503 meanwhile) before exiting 75.",
    "reopen_sessions": "After `PI_AXERA_SD_MAX_RUNTIME_FAILURES` runtime errors in a row, close and "
    "reopen the models once in-process before exiting 3.",
    "require_variant": "A missing variant file is a configuration error (exit 2) instead of a warning.",
    "text_cache_size": "Prompts whose text-encoder output is kept in memory (least recently used go).",
    "vae": "Default VAE decoder: `full`, or `tiny` (TAESD, needs `vae_decoder_tiny.onnx`; img2img then "
    "encodes with `vae_encoder_tiny.onnx` where present). Requests may override it.",
    "deep_cache": "DeepCache: 0 off; N >= 2 runs the whole UNet every N steps and its shallow path "
    "between them (needs `unet_deep.onnx` + `unet_shallow.onnx` from `models export --deep-cache`; "
    "see [models.md](models.md#deepcache)).",
    "guidance_scale": "LCM UNets with a guidance input (`timestep_cond`): the guidance scale embedded. "
    "Unset: `guidance_scale` in the model's `model_index.json`, else 8.5 (diffusers' default).",
    "auto_download": "`serve` fetches the platform's default model when the model folder holds no model "
    "files and no model file or text folder is set (the systemd unit turns this off).",
    "default_model": "What that first-run download fetches: a preset (`axera`, `openvino`, ...) or a "
    "hub repo id `owner/name`.",
    "randn_source": "The noise generator (A1111's `randn_source`): `CPU` draws as torch's CPU "
    "generator does, so a seed gives the image diffusers or A1111 (`RNG: CPU`) give; `PCG64` is "
    "numpy's. Requests may override it (`override_settings`).",
    "prompt_syntax": "Read prompts in A1111's prompt language: `(word:1.2)` weights, `BREAK`, "
    "`[from:to:when]` editing, `[a|b]` alternation, `<lora:...>` tags removed. Off: prompts are literal "
    "text, as in the original service. Requests may override it (`override_settings.prompt_syntax`).",
    "max_prompt_chunks": "75-token chunks a long prompt may fill on a model whose UNet takes 77*k "
    "context tokens (our exports); tokens past them are dropped and the answer says so. A model fixed "
    "at 77 tokens (an `.axmodel`) takes one.",
    "cfg": "Classifier-free guidance when a request's `cfg_scale` is above 1: the negative prompt is "
    "used and each step runs the UNet twice (one batch-2 run where the model allows it). Off (LCM's "
    "CFG 1): both are ignored and the answer says so. Requests may turn it on "
    "(`override_settings.cfg`).",
    "max_cfg_scale": "With guidance on, a larger `cfg_scale` is lowered to this (LCM degrades above about "
    "2); the answer says so.",
    # HTTP service
    "host": "The listen host: the address the HTTP service binds (`0.0.0.0` for every interface).",
    "port": "The port it listens on.",
    "output_dir": "Where copies of images go (dated folders) when `PI_AXERA_SD_SAVE_IMAGES` is on, and "
    "AXERA sample requests with `return_base64: false`.",
    "save_images": "Keep a copy of every image in `OUTPUT_DIR` (opt-in, so a long-running service does "
    "not fill the disk). A failed copy never fails the image.",
    "image_link_ttl_s": 'How long OpenAI `response_format: "url"` links live (at most 32 are kept).',
    "queue_size": "Jobs that may wait for the inference lane; more answer 503 with `Retry-After`.",
    "max_images_per_request": "Cap on A1111 `batch_size x n_iter` and OpenAI `n`.",
    "max_body_bytes": "Largest request body (413 above it).",
    "max_image_bytes": "Largest encoded input image (413 above it).",
    "max_image_pixels": "Largest input image in pixels (4096x4096 by default), checked before decoding, "
    "so decompression bombs are refused.",
    "png_compress_level": "zlib level of the PNGs the service writes (0 none, 9 smallest and slowest).",
    "api_auth": "HTTP Basic credentials `user:pass[,user2:pass2]` (A1111's `--api-auth`) for every "
    "route but `/health`, `/ready`, the page and OpenAI image links. Prefer the variable to the flag.",
    "api_token": "A bearer token (`Authorization: Bearer <token>`; the OpenAI API key of clients), "
    "same routes as `PI_AXERA_SD_API_AUTH`.",
    "cors_origins": "Browser origins allowed to call the API, comma-separated or a JSON list "
    "(`'[\"https://ui.example\"]'`).",
    "max_runtime_failures": "Runtime errors in a row (not request errors) before the models are "
    "reopened, and then before the process exits 3.",
    "listen_after_load": "Open the port only once the models are loaded, as the original service did "
    "(load-test scripts that take an open port as ready).",
    "shutdown_grace_s": "On SIGTERM, how long the running job may take to finish.",
    "drain_s": "On SIGTERM, first report not ready (`GET /ready` 503) but keep taking work this long, "
    "so a load balancer moves traffic away before the listener closes; 0 = stop at once.",
    "log_level": "Log level; JSON lines on stderr (readable lines on a terminal).",
    "log_max_string": "Characters of any one string in a log line (longer ones are cut).",
    # interrogation
    "clip_dir": "The CLIP folder; interrogation is off (503) when it holds no tower.",
    "clip_vision_model": "One image-tower file instead of the CLIP folder's (a missing one is a "
    "start-up error).",
    "clip_text_model": "One text-tower file instead of the CLIP folder's (a missing one is a start-up "
    "error).",
    "interrogate_tags_file": "A custom taxonomy: one label per line (`#` comments) or a JSON list. "
    "Unset: the 20,101 ImageNet-21K labels shipped with the package.",
    "embedding_cache_dir": "Where the taxonomy's text embeddings are kept (built once, then memory-mapped).",
    "max_structured_labels": "Most labels one `/sdapi/v1/interrogate/structured` request may hold (400 "
    "above).",
    "interrogate_templates": 'Prompt templates for label embeddings (`{}` = the label), e.g. `["a photo '
    'of a {}"]`; several are averaged.',
    "clip_precision": "OpenVINO's precision for the CLIP towers. `f32` on every CPU, so scores match "
    "transformers' and do not depend on the CPU (BF16 moved them by ~0.01, which flips tags at a "
    "threshold); `bf16` trades that for speed.",
    "clip_text_batch": "Labels per text-tower run while building the embedding cache.",
}

# What an unset (None) default means, where it means something.
UNSET: dict[str, str] = {
    "text_model_dir": "`MODELS_DIR`",
    "text_encoder_model": "in `MODELS_DIR`",
    "unet_model": "in `MODELS_DIR`",
    "vae_decoder_model": "in `MODELS_DIR`",
    "vae_encoder_model": "in `MODELS_DIR`",
    "time_input_txt2img": "in `MODELS_DIR`",
    "time_input_img2img": "in `MODELS_DIR`",
    "ax_provider": "the first available",
    "precision": "OpenVINO's choice",
    "openvino_cache_dir": "`$XDG_CACHE_HOME/pi-axera-sd/openvino` (`~/.cache/...`)",
    "npu_device": "card 0",
    "guidance_scale": "the model's, else 8.5",
    "default_model": "`axera` with an NPU, else `openvino`",
    "clip_vision_model": "in `CLIP_DIR`",
    "clip_text_model": "in `CLIP_DIR`",
    "interrogate_tags_file": "ImageNet-21K labels",
    "embedding_cache_dir": "`<CLIP_DIR>/cache`",
}

# Values checked by a validator rather than by the type.
RULES: dict[str, str] = {
    "deep_cache": "0, or an integer >= 2",
    "randn_source": ", ".join(f"`{name}`" for name, canon in RANDN_ALIASES.items() if name == canon)
    + " ("
    + ", ".join(f"`{name}` = `{canon}`" for name, canon in RANDN_ALIASES.items() if name != canon)
    + ")",
}


# ---- reading config.py ----------------------------------------------------------------------------


def _config_source() -> str:
    return Path(inspect.getsourcefile(config)).read_text(encoding="utf-8")


def source_layout(source: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """``(section of each field, comment of each field)`` from ``config.py``'s source (or ``source``):
    sections are its ``# ---- name ----`` lines, a field's comment the one on its lines, else the
    block of comments just above it."""
    source = _config_source() if source is None else source
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    klass = next(
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef) and node.name == Settings.__name__
    )
    sections: dict[str, str] = {}
    meanings: dict[str, str] = {}
    section = "Settings"
    previous_end = klass.lineno
    for node in klass.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            previous_end = node.end_lineno or node.lineno
            continue
        above: list[str] = []
        for line in range(previous_end + 1, node.lineno):
            text = comments.get(line)
            header = re.fullmatch(r"-{3,}\s*(.+?)\s*-{3,}", text or "")
            if header:
                section, above = header.group(1), []
            elif text is not None:
                above.append(text)
        name = node.target.id
        sections[name] = section
        beside = [
            comments[line]
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
            if line in comments
        ]
        if beside or above:
            meanings[name] = " ".join(beside or above)
        previous_end = node.end_lineno or node.lineno
    return sections, meanings


# ---- one row per setting --------------------------------------------------------------------------


def _flags() -> dict[str, list[str]]:
    """Field name -> the option strings ``pi-axera-sd serve`` gives it."""
    import argparse

    from pi_axera_sd.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve = sub.choices["serve"]
    return {a.dest: list(a.option_strings) for a in serve._actions if a.option_strings}


def _code(value: object) -> str:
    return f"`{value}`"


def default_text(name: str, field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None or default == []:
        return UNSET.get(name, "none")
    if isinstance(default, SecretStr):
        return "none"
    if isinstance(default, bool):
        return _code(str(default).lower())
    if isinstance(default, Path):
        return _code(default.as_posix())
    if isinstance(default, list):
        import json

        return _code(json.dumps(default))
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    text = _code(default)
    if name.endswith("_bytes") and isinstance(default, int) and default % (1024 * 1024) == 0:
        text += f" ({default // (1024 * 1024)} MiB)"
    return text


def allowed_text(name: str, field: FieldInfo) -> str:
    if name in RULES:
        return RULES[name]
    kind = base_type(field.annotation)
    if get_origin(kind) is Literal:
        return ", ".join(_code(c) for c in get_args(kind))
    if kind is bool:
        return "`true`, `false` (also `1`/`0`, `yes`/`no`, `on`/`off`)"
    if get_origin(kind) is list:
        text = "a list: comma-separated or JSON"
        least = [m.min_length for m in field.metadata if isinstance(getattr(m, "min_length", None), int)]
        return text + (f", at least {least[0]} item" + ("s" if least[0] > 1 else "") if least else "")
    words = {int: "an integer", float: "a number", Path: "a path", str: "text", SecretStr: "text (secret)"}
    text = words.get(kind, str(kind))
    bounds = []
    for meta in field.metadata:  # annotated_types' Ge, Gt, Le, Lt: one bound each
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(getattr(meta, attr, None), int | float):
                bounds.append(f"{sign} {getattr(meta, attr)}")
    return text + (" " + " and ".join(bounds) if bounds else "")


def meaning_text(name: str, field: FieldInfo, comments: dict[str, str]) -> str | None:
    return field.description or MEANINGS.get(name) or comments.get(name)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# ---- the page -------------------------------------------------------------------------------------

INTRO = f"""\
# Configuration

<!-- Generated from pi_axera_sd.config.Settings by scripts/configuration_doc.py; do not edit.
     Regenerate: {REGENERATE} -->

Every setting is an environment variable and a flag of `pi-axera-sd serve`; a flag given on the
command line wins over the variable. `pi-axera-sd systemd` and `pi-axera-sd haproxy` take the same
flags and write them into the units they make. `generate` and `interrogate` take the model and
runtime flags (`--models`, `--runtime`, `--device`, `--threads`, `--ax-provider`, `--deep-cache`),
`models verify` the runtime flags and `--npu-device` (its folder is its argument); they read every
other setting from the environment.

- Names: the original service's settings keep its plain names (`HOST`, `PORT`, `MODELS_DIR`,
  `UNET_MODEL`...); `{PREFIX}<NAME>` works for them too. Every other setting is only
  `{PREFIX}<NAME>`.
- A yes/no setting has two flags (`--save-images`, `--no-save-images`). A list is comma-separated
  words or a JSON list, in the variable and the flag alike.
- A bad value stops the command with one line naming the variable, the flag, the value and what
  is allowed, and exit 2: `PORT=abc pi-axera-sd serve` prints `error: invalid setting PORT /
  --port = 'abc': input should be a valid integer, unable to parse string as an integer`.
- `pi-axera-sd serve --help` lists every flag with its variable and default.
"""


def render_configuration() -> str:
    """The whole of docs/configuration.md."""
    sections, comments = source_layout()
    flags = _flags()
    missing = [n for n, f in Settings.model_fields.items() if not meaning_text(n, f, comments)]
    if missing:
        raise ValueError(f"settings without a meaning (add one to MEANINGS in {__name__}): {missing}")
    out = [INTRO]
    current = None
    for name, field in Settings.model_fields.items():
        section = sections.get(name, "Settings")
        if section != current:
            current = section
            out.append(f"\n## {section[:1].upper()}{section[1:]}\n")
            out.append("| variable | flag | default | allowed | meaning |")
            out.append("|---|---|---|---|---|")
        flag = ", ".join(_code(f) for f in flags.get(name, [])) or "(variable only)"
        row = [
            _code(env_name(name, field)),
            flag,
            default_text(name, field),
            allowed_text(name, field),
            meaning_text(name, field, comments) or "",
        ]
        out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(out) + "\n"
