"""Scores from unit embeddings: cosine ranking for tags, softmax(scale * cosine) per category."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from pi_axera_sd.errors import InvalidInput


def cosine_scores(label_rows: np.ndarray, image_vector: np.ndarray) -> np.ndarray:
    """``[N]`` cosine similarities of unit label rows ``[N, D]`` with a unit image vector ``[D]``."""
    if label_rows.shape[1] != image_vector.shape[0]:
        raise ValueError(
            f"text embeddings have {label_rows.shape[1]} dims, the image embedding {image_vector.shape[0]}: "
            "the two towers belong to different models"
        )
    return np.asarray(label_rows @ image_vector, dtype=np.float32)


def top_indices(scores: np.ndarray, top_k: int, threshold: float, *, inclusive: bool = True) -> list[int]:
    """Indices of the best ``top_k`` scores that pass ``threshold`` (``>=``, or ``>`` when not
    inclusive), best first; ties keep label order."""
    if top_k <= 0 or scores.size == 0:
        return []
    k = min(top_k, scores.size)
    candidates = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    ordered = sorted(candidates.tolist(), key=lambda i: (-float(scores[i]), i))
    passes = (lambda s: s >= threshold) if inclusive else (lambda s: s > threshold)
    return [i for i in ordered if passes(float(scores[i]))]


def best_index(scores: np.ndarray) -> int:
    return int(np.argmax(scores))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits)
    weights = np.exp(shifted)
    return weights / weights.sum()


def check_params(top_k: object, threshold: object, what: str = "") -> tuple[int, float]:
    """Validate a top-k / threshold pair from a request."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidInput(f"{what}top_k must be a positive integer, got {top_k!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise InvalidInput(f"{what}threshold must be a finite number, got {threshold!r}")
    return top_k, float(threshold)


def check_categories(categories: object, max_labels: int) -> dict[str, list[str]]:
    """Validate a structured request's ``categories``: a non-empty object mapping names to non-empty
    lists of label strings. Labels are stripped and de-duplicated (first kept) per category; the
    limit counts labels as sent, and is checked before any per-label work."""
    if not isinstance(categories, Mapping):
        raise InvalidInput(
            'categories must be an object mapping a category name to a list of labels, e.g. {"gender": '
            f'["man", "woman"]}}, not {type(categories).__name__}'
        )
    if not categories:
        raise InvalidInput("categories is empty: give at least one category with its labels")
    too_many = InvalidInput(
        f"categories hold too many labels: more than {max_labels} in all (PI_AXERA_SD_MAX_STRUCTURED_LABELS)"
    )
    # Sizes first, before any per-label work: a refused request costs O(categories).
    sent = 0
    for name, labels in categories.items():
        if not isinstance(name, str) or not name.strip():
            shown = str(name)[:40]
            raise InvalidInput(f"categories: category names must be non-empty strings, got {shown!r}")
        if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
            raise InvalidInput(
                f"categories.{name[:40]} must be a list of label strings, not {type(labels).__name__}"
            )
        sent += len(labels)
        if sent > max_labels:
            raise too_many
    checked: dict[str, list[str]] = {}
    for name, labels in categories.items():
        clean: dict[str, None] = {}  # ordered set: linear de-duplication, first kept
        for label in labels:
            if not isinstance(label, str):
                raise InvalidInput(
                    f"categories.{name[:40]} holds a {type(label).__name__}; labels must be strings"
                )
            label = label.strip()
            if not label:
                raise InvalidInput(f"categories.{name[:40]} holds an empty label")
            clean[label] = None
        if not clean:
            raise InvalidInput(f"categories.{name[:40]} has no labels")
        checked[name] = list(clean)
    return checked


def category_result(labels: Sequence[str], cosines: np.ndarray, scale: float) -> tuple[str, float, dict]:
    """(winner, confidence, label -> probability) of softmax(scale * cosine) over one category."""
    probs = softmax(scale * np.asarray(cosines, dtype=np.float64))
    winner = int(np.argmax(probs))
    return (
        labels[winner],
        float(probs[winner]),
        {label: float(p) for label, p in zip(labels, probs, strict=True)},
    )
