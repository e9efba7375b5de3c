"""The CLIP interrogator: the :class:`~pi_axera_sd.interrogate.protocol.Interrogator` the service calls.

Start-up is cheap: :meth:`ClipInterrogator.warmup_step`'s first call hashes the text encoder
(remembered across starts) and memory-maps the cached taxonomy embeddings if they exist. Otherwise
each further call embeds one batch of labels, so the service can interleave the first build with
image generation; until it finishes, :meth:`tags` raises :class:`WarmingUp` (HTTP 503) while
:meth:`structured` still answers, with empty ``general_tags``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from pi_axera_sd.defaults import GENERAL_THRESHOLD, GENERAL_TOP_K, TAG_THRESHOLD, TAG_TOP_K
from pi_axera_sd.errors import ModelError
from pi_axera_sd.interrogate.cache import CacheSpec, EmbeddingCache, PartialBuild
from pi_axera_sd.interrogate.encoders import ImageEncoder, TextEncoder
from pi_axera_sd.interrogate.errors import WarmingUp
from pi_axera_sd.interrogate.labels import DEFAULT_TEMPLATES, LabelCache, check_templates, embed_labels
from pi_axera_sd.interrogate.protocol import CategoryResult, StructuredResult, TagScore, WarmupState
from pi_axera_sd.interrogate.scoring import (
    category_result,
    check_categories,
    check_params,
    cosine_scores,
    top_indices,
)
from pi_axera_sd.interrogate.taxonomy import labels_digest

log = logging.getLogger(__name__)

_LOG_EVERY_S = 30.0


class ClipInterrogator:
    """CLIP zero-shot tagging against a taxonomy, plus per-category classification."""

    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        labels: Sequence[str],
        *,
        cache: EmbeddingCache,
        encoder_hash: str | Callable[[], str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        logit_scale: float = 100.0,
        max_structured_labels: int = 2000,
        label_cache_size: int = 8192,
        step_labels: int | None = None,
        name: str = "clip",
    ) -> None:
        if not labels:
            raise ModelError("the interrogation taxonomy holds no labels")
        if image_encoder.dim and text_encoder.dim and image_encoder.dim != text_encoder.dim:
            raise ModelError(
                f"CLIP towers do not match: image embeddings have {image_encoder.dim} dims, "
                f"text embeddings {text_encoder.dim}"
            )
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.labels = list(labels)
        self.cache = cache
        self.templates = check_templates(templates)
        self.logit_scale = float(logit_scale)
        self.max_structured_labels = max_structured_labels
        self.name = name
        self.step_labels = step_labels or max(1, max(text_encoder.batch, 16) // len(self.templates))
        self._encoder_hash = encoder_hash
        self._lock = threading.Lock()  # one warmup step at a time
        self._spec: CacheSpec | None = None
        self._build: PartialBuild | None = None
        self._rows: np.ndarray | None = None
        self._index: dict[str, int] = {}
        self._last_log = 0.0
        self.label_cache = LabelCache(self.embed_labels, capacity=label_cache_size)
        self.timings: dict[str, float] = {}
        self._state = WarmupState(
            ready=False,
            done=0,
            total=len(self.labels),
            message="interrogation is warming up: loading the taxonomy embeddings",
        )

    # ---- protocol ----------------------------------------------------------------------------

    def status(self) -> WarmupState:
        return self._state

    @property
    def ready(self) -> bool:
        return self._rows is not None

    def warmup_step(self) -> bool:
        with self._lock:
            if self._rows is not None or self._state.error is not None:
                return False
            try:
                if self._build is None:
                    self._prepare()
                else:
                    self._embed_next_batch()
            except Exception as exc:  # background work: any failure becomes the reported status
                log.exception("interrogation warm-up failed")
                self._state = WarmupState(
                    ready=False,
                    done=self._build.done if self._build else 0,
                    total=len(self.labels),
                    message=f"interrogation is unavailable: building the label embeddings failed: {exc}",
                    error=f"{type(exc).__name__}: {exc}",
                )
                return False
            return self._rows is None

    def tags(
        self, image: Image.Image, top_k: int = TAG_TOP_K, threshold: float = TAG_THRESHOLD
    ) -> list[TagScore]:
        top_k, threshold = check_params(top_k, threshold)
        rows = self._require_rows()
        scores = cosine_scores(rows, self.image_encoder.encode(image))
        picked = top_indices(scores, top_k, threshold) or [int(np.argmax(scores))]
        return [TagScore(self.labels[i], float(scores[i])) for i in picked]

    def structured(
        self,
        image: Image.Image,
        categories: Mapping[str, Sequence[str]],
        general_top_k: int = GENERAL_TOP_K,
        general_threshold: float = GENERAL_THRESHOLD,
    ) -> StructuredResult:
        checked = check_categories(categories, self.max_structured_labels)
        general_top_k, general_threshold = check_params(general_top_k, general_threshold, "general_")
        vector = self.image_encoder.encode(image)
        unique = list(dict.fromkeys(label for labels in checked.values() for label in labels))
        rows = self.label_cache.get_many(unique, lookup=self._taxonomy_row)
        cosines = dict(zip(unique, cosine_scores(rows, vector), strict=True))
        results = {}
        for category, labels in checked.items():
            winner, confidence, probs = category_result(
                labels, np.array([cosines[label] for label in labels]), self.logit_scale
            )
            results[category] = CategoryResult(winner=winner, confidence=confidence, scores=probs)
        general: list[str] = []
        taxonomy = self._rows
        if taxonomy is not None:
            scores = cosine_scores(taxonomy, vector)
            picked = top_indices(scores, general_top_k, general_threshold, inclusive=False)
            general = [self.labels[i] for i in picked]
        return StructuredResult(results=results, general_tags=general)

    # ---- helpers -----------------------------------------------------------------------------

    def embed_labels(self, labels: Sequence[str]) -> np.ndarray:
        """Template-ensembled unit embeddings of any labels (not cached)."""
        return embed_labels(self.text_encoder, labels, self.templates)

    def scores(self, image: Image.Image) -> np.ndarray:
        """Cosine similarity of ``image`` with every taxonomy label, in taxonomy order."""
        return cosine_scores(self._require_rows(), self.image_encoder.encode(image))

    @property
    def embeddings(self) -> np.ndarray | None:
        """The taxonomy embeddings ``[labels, dim]`` once ready."""
        return self._rows

    def describe(self) -> dict:
        state = self._state
        return {
            "name": self.name,
            "labels": len(self.labels),
            "templates": list(self.templates),
            "ready": state.ready,
            "progress": round(state.progress, 4),
            "image_tower": self.image_encoder.session.describe(),
            "text_tower": self.text_encoder.session.describe(),
            "text_batch": self.text_encoder.batch,
            "cache_dir": str(self.cache.directory) if self.cache.directory else None,
            "cache_key": self._spec.key if self._spec else None,
        }

    def _require_rows(self) -> np.ndarray:
        rows = self._rows
        if rows is not None:
            return rows
        state = self._state
        if state.error is not None:
            raise ModelError(state.message)
        raise WarmingUp(state)

    def _taxonomy_row(self, label: str) -> np.ndarray | None:
        rows = self._rows
        i = self._index.get(label)
        return None if rows is None or i is None else rows[i]

    def _prepare(self) -> None:
        started = time.perf_counter()
        encoder_hash = self._encoder_hash() if callable(self._encoder_hash) else self._encoder_hash
        self.timings["encoder_hash_s"] = time.perf_counter() - started
        spec = CacheSpec(encoder_hash, self.templates, labels_digest(self.labels), len(self.labels))
        self._spec = spec
        loading = time.perf_counter()
        rows = self.cache.load(spec)
        if rows is not None:
            self.timings["cache_load_s"] = time.perf_counter() - loading
            self._publish(rows, f"loaded from {self.cache.directory}")
            return
        dim = self.text_encoder.dim or int(self.embed_labels(["probe"]).shape[1])
        self._build = self.cache.start(spec, dim)
        if self._build.complete:
            self._finish()
            return
        log.info(
            "embedding %d labels for interrogation (batch %d, %d template(s)); "
            "interrogation answers 503 until done",
            len(self.labels) - self._build.done,
            self.text_encoder.batch,
            len(self.templates),
        )
        self._progress()

    def _embed_next_batch(self) -> None:
        build = self._build
        assert build is not None
        batch = self.labels[build.done : build.done + self.step_labels]
        build.append(self.embed_labels(batch))
        if build.complete:
            self._finish()
        else:
            self._progress()

    def _finish(self) -> None:
        build = self._build
        assert build is not None
        seconds = time.monotonic() - build.started
        self.timings["build_s"] = seconds
        rows = self.cache.finish(build, build_seconds=round(seconds, 2), source=self.name)
        self._build = None
        self._publish(rows, f"built {build.spec.count - build.resumed_from} in {seconds:.1f} s")

    def _publish(self, rows: np.ndarray, how: str) -> None:
        self._index = {}
        for i, label in enumerate(self.labels):
            self._index.setdefault(label, i)
        self._rows = rows
        self._state = WarmupState(
            ready=True,
            done=len(self.labels),
            total=len(self.labels),
            message=f"ready: {len(self.labels)} label embeddings ({how})",
        )
        log.info("interrogation ready: %d label embeddings (%s)", len(self.labels), how)

    def _progress(self) -> None:
        build = self._build
        assert build is not None
        total = build.spec.count
        elapsed = time.monotonic() - build.started
        made = build.done - build.resumed_from
        eta = f", about {elapsed / made * (total - build.done):.0f} s left" if made else ""
        self._state = WarmupState(
            ready=False,
            done=build.done,
            total=total,
            message=(
                f"interrogation is warming up: embedded {build.done}/{total} labels "
                f"({100 * build.done / total:.1f}%){eta}"
            ),
        )
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            log.info(self._state.message)
