"""What the HTTP service needs from interrogation, so the two can be built and tested apart.

All methods are synchronous. The service calls :meth:`Interrogator.tags` and
:meth:`Interrogator.structured` from its single inference lane (they run the CLIP encoders), and
drives the first build of the taxonomy embeddings as low-priority lane work through
:meth:`Interrogator.warmup_step`, so a 20k-label build never blocks image generation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from pi_axera_sd.defaults import GENERAL_THRESHOLD, GENERAL_TOP_K, TAG_THRESHOLD, TAG_TOP_K


@dataclass(frozen=True)
class TagScore:
    tag: str
    score: float  # cosine similarity of L2-normalised CLIP embeddings


@dataclass(frozen=True)
class CategoryResult:
    winner: str
    confidence: float  # softmax(100 * cosine) over the category's labels
    scores: dict[str, float] = field(default_factory=dict)  # label -> softmax probability


@dataclass(frozen=True)
class StructuredResult:
    results: dict[str, CategoryResult]
    general_tags: list[str]


@dataclass(frozen=True)
class WarmupState:
    ready: bool  # taxonomy embeddings loaded: flat interrogation can answer
    done: int  # labels embedded so far
    total: int  # labels in the taxonomy
    message: str
    error: str | None = None

    @property
    def progress(self) -> float:
        return 1.0 if self.total == 0 else self.done / self.total


class Interrogator(Protocol):
    def status(self) -> WarmupState: ...

    def warmup_step(self) -> bool:
        """Load the cached taxonomy embeddings, or embed the next batch of labels.
        Returns True while more work remains."""
        ...

    def tags(
        self, image: Image.Image, top_k: int = TAG_TOP_K, threshold: float = TAG_THRESHOLD
    ) -> list[TagScore]:
        """Flat interrogation: taxonomy tags with score >= threshold, best first, at most top_k;
        if none pass, the single best tag."""
        ...

    def structured(
        self,
        image: Image.Image,
        categories: Mapping[str, Sequence[str]],
        general_top_k: int = GENERAL_TOP_K,
        general_threshold: float = GENERAL_THRESHOLD,
    ) -> StructuredResult:
        """Per category: softmax(100 * cosine) over its labels -> winner and confidence;
        general_tags: taxonomy tags scoring above general_threshold, at most general_top_k
        (empty while the taxonomy is still warming up)."""
        ...
