"""Building the interrogator from :class:`~pi_axera_sd.config.Settings` (what the service calls)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pi_axera_sd.config import Settings
from pi_axera_sd.engine.contract import TOKENIZER_FILES, TOKENIZER_JSON
from pi_axera_sd.engine.tokenizer import ClipTokenizer
from pi_axera_sd.errors import ModelError
from pi_axera_sd.interrogate.cache import EmbeddingCache
from pi_axera_sd.interrogate.encoders import DEFAULT_TEXT_BATCH, ImageEncoder, TextEncoder, load_projection
from pi_axera_sd.interrogate.fingerprint import FileHashes
from pi_axera_sd.interrogate.interrogator import ClipInterrogator
from pi_axera_sd.interrogate.labels import DEFAULT_TEMPLATES
from pi_axera_sd.interrogate.layout import ClipLayout, has_clip_files, resolve_clip_layout
from pi_axera_sd.interrogate.preprocess import ImageSpec
from pi_axera_sd.interrogate.taxonomy import load_labels
from pi_axera_sd.runtime import RuntimeOptions, open_session
from pi_axera_sd.wiring import clip_runtime_options, prefers_axmodel

log = logging.getLogger(__name__)

HASH_STORE = "file_hashes.json"


def find_clip_dir(settings: Settings) -> Path | None:
    """The folder holding the CLIP towers: ``clip_dir``, else where the original Pi service kept
    them, at the root of ``TEXT_MODEL_DIR`` (its default: the model folder)."""
    candidates = [settings.clip_dir, settings.text_model_dir or settings.models_dir]
    return next((folder for folder in candidates if has_clip_files(folder)), None)


def cache_dir_for(settings: Settings) -> Path:
    return settings.embedding_cache_dir or settings.clip_dir / "cache"


def text_encoder_hash(layout: ClipLayout, hashes: FileHashes, computed_by: str = "") -> str:
    """Hash of everything that decides a label's embedding: the text tower (and its external
    weights), the CPU projection, the tokenizer files, the sequence length, and what computed it
    (runtime and precision: BF16 embeddings are not FP32's)."""
    parts: list[tuple[str, str]] = [("text", hashes.sha256(layout.text))]
    if computed_by:
        parts.append(("computed_by", computed_by))
    weights = layout.text.with_name(layout.text.name + ".data")
    if weights.is_file():
        parts.append(("text_data", hashes.sha256(weights)))
    if layout.text_projection is not None:
        parts.append(("text_projection", hashes.sha256(layout.text_projection)))
    fast = layout.tokenizer_dir / TOKENIZER_JSON  # the form the tokenizer reads (engine.tokenizer)
    for name in (TOKENIZER_JSON,) if fast.is_file() else TOKENIZER_FILES:
        parts.append((name, hashes.sha256(layout.tokenizer_dir / name)))
    parts.append(("max_length", str(layout.text_max_length)))
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def _image_spec(layout: ClipLayout, encoder_input_hw: int | None) -> ImageSpec:
    try:
        return ImageSpec.from_manifest(layout.manifest, fallback_size=encoder_input_hw)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{layout.root}: bad image settings in the CLIP manifest: {exc}") from exc


def build_interrogator(
    layout: ClipLayout,
    labels: Sequence[str],
    *,
    options: RuntimeOptions | None = None,
    cache_dir: Path | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    text_batch: int = DEFAULT_TEXT_BATCH,
    max_structured_labels: int = 2000,
) -> ClipInterrogator:
    """Open both towers of ``layout`` and wrap them with an embedding cache in ``cache_dir``."""
    vision = open_session(layout.vision, options)
    text = open_session(layout.text, options)
    pixel_shape = vision.inputs[0].shape if vision.inputs else ()
    side = pixel_shape[-1] if len(pixel_shape) == 4 and isinstance(pixel_shape[-1], int) else None
    spec = _image_spec(layout, side)
    image_encoder = ImageEncoder(
        vision, spec, load_projection(layout.vision_projection) if layout.vision_projection else None
    )
    text_encoder = TextEncoder(
        text,
        ClipTokenizer(layout.tokenizer_dir, max_length=layout.text_max_length),
        load_projection(layout.text_projection) if layout.text_projection else None,
        batch_size=text_batch,
    )
    hashes = FileHashes(cache_dir / HASH_STORE if cache_dir else None)
    return ClipInterrogator(
        image_encoder,
        text_encoder,
        labels,
        cache=EmbeddingCache(cache_dir),
        encoder_hash=lambda: text_encoder_hash(layout, hashes, f"{text.runtime}/{text.provider}"),
        templates=templates,
        logit_scale=layout.logit_scale,
        max_structured_labels=max_structured_labels,
        name=layout.name,
    )


def load_interrogator(
    settings: Settings,
    *,
    templates: Sequence[str] | None = None,
    text_batch: int | None = None,
    warm: bool = True,
) -> ClipInterrogator | None:
    """The interrogator the settings describe, or None when no CLIP model is configured.

    Interrogation is off when ``clip_dir`` holds no CLIP tower and neither ``CLIP_VISION_MODEL``
    nor ``CLIP_TEXT_MODEL`` is set; files that are configured but missing or mismatched raise
    :class:`ModelError`. With ``warm`` the first warm-up step runs here: the cached taxonomy
    embeddings are memory-mapped if they exist, so interrogation is ready at once; otherwise the
    service finishes the build through :meth:`ClipInterrogator.warmup_step`.
    """
    explicit = settings.clip_vision_model is not None or settings.clip_text_model is not None
    if not explicit:
        found = find_clip_dir(settings)
        if found is None:
            log.info("no CLIP model in %s: interrogation is disabled", settings.clip_dir)
            return None
        if found != settings.clip_dir:
            log.info("CLIP model found in %s (the original service's place)", found)
            settings = settings.model_copy(update={"clip_dir": found})
    layout = resolve_clip_layout(
        settings.clip_dir,
        vision=settings.clip_vision_model,
        text=settings.clip_text_model,
        prefer_axmodel=prefers_axmodel(settings),
    )
    labels = load_labels(settings.interrogate_tags_file)
    templates = templates or settings.interrogate_templates or DEFAULT_TEMPLATES
    text_batch = text_batch or settings.clip_text_batch or DEFAULT_TEXT_BATCH
    try:
        interrogator = build_interrogator(
            layout,
            labels,
            options=clip_runtime_options(settings),
            cache_dir=cache_dir_for(settings),
            templates=templates,
            text_batch=text_batch,
            max_structured_labels=settings.max_structured_labels,
        )
    except ValueError as exc:  # bad templates
        raise ModelError(f"interrogation settings: {exc}") from exc
    if warm:
        interrogator.warmup_step()
    return interrogator
