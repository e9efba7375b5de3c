"""Images kept for a while behind unguessable URLs, for OpenAI clients that ask for
``response_format: "url"``. In memory, bounded both in time and in count, so a busy day cannot
fill the disk or the RAM of a Pi."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict

LINK_PREFIX = "/v1/images/files/"  # open without credentials: the random name is the capability
MAX_LINKS = 32


class ImageLinks:
    def __init__(self, ttl_s: float, max_links: int = MAX_LINKS) -> None:
        self.ttl_s = ttl_s
        self.max_links = max_links
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, png: bytes) -> str:
        """Keep ``png`` and return its file name (``<random>.png``)."""
        name = f"{secrets.token_urlsafe(18)}.png"
        with self._lock:
            self._expire(time.monotonic())
            self._items[name] = (time.monotonic() + self.ttl_s, png)
            while len(self._items) > self.max_links:
                self._items.popitem(last=False)
        return name

    def get(self, name: str) -> bytes | None:
        with self._lock:
            self._expire(time.monotonic())
            item = self._items.get(name)
        return item[1] if item else None

    def _expire(self, now: float) -> None:
        while self._items:
            name, (deadline, _) = next(iter(self._items.items()))
            if deadline > now:
                break
            del self._items[name]
