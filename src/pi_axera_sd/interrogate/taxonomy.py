"""Label taxonomies for CLIP interrogation.

The default taxonomy is the 20,101 distinct first lemmas of Google's ImageNet-21K synset list
(see ``scripts/build_taxonomy.py`` for how the packaged file is derived). A custom taxonomy is a
UTF-8 text file with one label per line (blank lines and ``#`` comments ignored) or a ``.json``
file holding a list of strings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pi_axera_sd.errors import ModelError

DEFAULT_TAXONOMY = "imagenet21k"
_PACKAGED_RESOURCE = "data/imagenet21k_labels.txt"


def _dedup(labels: Iterable[str]) -> list[str]:
    """Strip each label, drop empty ones and later duplicates (first occurrence wins)."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in labels:
        label = raw.strip()
        if label and label not in seen:
            seen.add(label)
            out.append(label)
    return out


@lru_cache(maxsize=1)
def _packaged_labels() -> tuple[str, ...]:
    resource = resources.files("pi_axera_sd") / _PACKAGED_RESOURCE
    try:
        text = resource.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the packaged taxonomy {resource}: {exc}") from exc
    labels = _dedup(text.splitlines())
    if not labels:
        raise ModelError(f"the packaged taxonomy {resource} holds no labels")
    return tuple(labels)


def _read_custom(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read taxonomy file {path}: {exc}") from exc

    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"taxonomy file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise ModelError(f"taxonomy file {path} must hold a JSON list of strings")
        return _dedup(data)

    return _dedup(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def load_labels(path: str | Path | None = None) -> list[str]:
    """Return the labels of a taxonomy.

    ``None`` gives the packaged ImageNet-21K list. A path names a custom taxonomy: a UTF-8 text
    file, one label per line, where blank lines and lines starting with ``#`` are ignored, or a
    ``.json`` file holding a list of strings. Labels are stripped of surrounding whitespace and
    later duplicates are dropped. Raises :class:`ModelError` when the file cannot be read or
    holds no labels.
    """
    if path is None:
        return list(_packaged_labels())
    path = Path(path)
    labels = _read_custom(path)
    if not labels:
        raise ModelError(f"taxonomy file {path} holds no labels")
    return labels


def labels_digest(labels: list[str]) -> str:
    """SHA-256 hex digest of the labels joined by newlines; a cache key for label embeddings."""
    return hashlib.sha256("\n".join(labels).encode("utf-8")).hexdigest()
