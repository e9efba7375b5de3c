"""Label -> text embedding, with prompt templates and an in-RAM LRU for structured requests.

A label's embedding is the mean of its unit template embeddings ("a photo of a {}"...),
renormalised: prompt ensembling as in CLIP's zero-shot evaluation. With one template it is simply
that template's embedding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from pi_axera_sd.interrogate.encoders import TextEncoder, l2_normalise

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}",)


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Templates as a tuple; each must hold exactly one ``{}`` where the label goes."""
    if isinstance(templates, str):
        templates = [templates]
    out = tuple(templates)
    if not out:
        raise ValueError("at least one prompt template is needed")
    for template in out:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"a prompt template needs exactly one '{{}}' for the label: {template!r}")
    return out


def embed_labels(encoder: TextEncoder, labels: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """``[len(labels), D]`` unit embeddings, template-ensembled."""
    if not labels:
        return np.zeros((0, encoder.dim or 0), dtype=np.float32)
    texts = [template.format(label) for label in labels for template in templates]
    vectors = encoder.encode(texts)
    if len(templates) == 1:
        return vectors
    grouped = vectors.reshape(len(labels), len(templates), -1)
    return l2_normalise(grouped.mean(axis=1))


class LabelCache:
    """LRU of label embeddings for one encoder and template set; thread-safe."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], capacity: int = 8192) -> None:
        self._embed = embed
        self.capacity = max(1, capacity)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get_many(
        self, labels: Sequence[str], lookup: Callable[[str], np.ndarray | None] | None = None
    ) -> np.ndarray:
        """Embeddings of ``labels`` in order. ``lookup`` is tried first (the taxonomy's rows);
        labels found nowhere are embedded in one batched call."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for label in labels:
                if label in found:
                    continue
                vector = self._items.get(label)
                if vector is not None:
                    self._items.move_to_end(label)
                    found[label] = vector
                    self.hits += 1
        missing = [label for label in dict.fromkeys(labels) if label not in found]
        if lookup is not None and missing:
            for label in missing:
                vector = lookup(label)
                if vector is not None:
                    found[label] = np.asarray(vector, dtype=np.float32)
            missing = [label for label in missing if label not in found]
        if missing:
            vectors = self._embed(missing)
            with self._lock:
                self.misses += len(missing)
                for label, vector in zip(missing, vectors, strict=True):
                    found[label] = vector
                    self._items[label] = vector
                    self._items.move_to_end(label)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        return np.stack([found[label] for label in labels]) if labels else np.zeros((0, 0), np.float32)
