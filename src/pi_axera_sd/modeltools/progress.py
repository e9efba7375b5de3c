"""Progress of long model commands (export, random, quantize): a tqdm bar over named, weighted
stages with an ETA on a terminal, and one log line per stage everywhere (journals, CI logs)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tqdm import tqdm

log = logging.getLogger(__name__)


class Stages:
    """``with stages.step("unet"): ...``; weights are rough relative costs, for the ETA."""

    def __init__(self, title: str, weights: Mapping[str, float]) -> None:
        self.title = title
        self.weights = dict(weights)
        # disable=None: the bar only on a terminal; the log lines say the same elsewhere
        self.bar = tqdm(total=sum(self.weights.values()), desc=title, unit="", file=sys.stderr, disable=None)
        self.bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        self.bar.set_description(f"{self.title}: {name}")
        log.info("%s: %s...", self.title, name)
        yield
        self.bar.update(self.weights.get(name, 1.0))
        log.info("%s: %s done (%.1f s)", self.title, name, time.perf_counter() - started)

    def close(self) -> None:
        self.bar.close()
