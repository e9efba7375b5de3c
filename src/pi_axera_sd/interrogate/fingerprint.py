"""SHA-256 of model files, remembered by (path, size, mtime) so start-up does not re-read them.

Hashing a 250 MB text tower takes about a second on a Pi; the embedding cache key needs the hash at
every start, so it is kept in a small JSON file beside the embeddings and recomputed only when a
file's size or modification time changes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pi_axera_sd.fileio import sha256_file, write_text_atomic

log = logging.getLogger(__name__)


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class FileHashes:
    """Hashes of files, persisted to ``store`` (or only kept in memory when it is ``None``)."""

    def __init__(self, store: Path | None) -> None:
        self.store = store
        self._entries: dict[str, dict] = {}
        if store is not None and store.is_file():
            try:
                data = json.loads(store.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    self._entries = {k: v for k, v in data.items() if isinstance(v, dict)}
            except (OSError, ValueError):
                log.warning("ignoring unreadable file-hash store %s", store)

    def sha256(self, path: Path) -> str:
        key = str(path.resolve())
        stamp = _stamp(path)
        known = self._entries.get(key)
        if known and known.get("size") == stamp["size"] and known.get("mtime_ns") == stamp["mtime_ns"]:
            digest = known.get("sha256")
            if isinstance(digest, str):
                return digest
        digest = sha256_file(path)
        self._entries[key] = {**stamp, "sha256": digest}
        self._save()
        return digest

    def _save(self) -> None:
        if self.store is None:
            return
        try:
            write_text_atomic(self.store, json.dumps(self._entries, indent=1, sort_keys=True))
        except OSError as exc:  # a read-only cache folder only costs re-hashing at the next start
            log.warning("cannot save file hashes to %s: %s", self.store, exc)
