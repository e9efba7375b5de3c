"""On-disk cache of taxonomy text embeddings.

One build is ``<dir>/<key>.npy`` (float32 ``[labels, dim]``, unit rows) with a JSON sidecar
``<key>.json``. The key is the SHA-256 of the text encoder's hash, the templates and the label
list's digest, so changing any of them selects (and builds) a different file. Finished files are
written under a temporary name and renamed; they are loaded memory-mapped, so start-up costs
a header read. float32, not float16: numpy has no fast float16 matrix-vector product (scoring 20k
rows is ~10x slower, or needs a float32 copy in RAM, losing the memory map), and float16 rows move
cosines by ~3.5e-5 for ViT-B/32's 512 dims but by more than the 1e-4 the scores are held to for
narrow models.

A build in progress is mirrored to ``<key>.partial.npy`` / ``<key>.partial.json`` after every
batch, so a restart resumes where it stopped. Anything that does not validate (a truncated file,
a sidecar for another key, rows that are not unit length) is deleted and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pi_axera_sd.fileio import write_text_atomic

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DTYPE = np.dtype("<f4")


@dataclass(frozen=True)
class CacheSpec:
    """What one set of taxonomy embeddings depends on."""

    encoder_hash: str
    templates: tuple[str, ...]
    labels_digest: str
    count: int

    @property
    def key(self) -> str:
        payload = {
            "version": CACHE_VERSION,
            "encoder": self.encoder_hash,
            "templates": list(self.templates),
            "labels": self.labels_digest,
            "count": self.count,
            "dtype": DTYPE.str,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()

    def sidecar(self, dim: int, **extra: object) -> dict:
        data = asdict(self)
        data["templates"] = list(self.templates)
        return {"version": CACHE_VERSION, "key": self.key, "dim": dim, "dtype": DTYPE.str, **data, **extra}


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _matches(meta: dict | None, spec: CacheSpec) -> bool:
    return bool(
        meta
        and meta.get("version") == CACHE_VERSION
        and meta.get("key") == spec.key
        and meta.get("count") == spec.count
        and meta.get("dtype") == DTYPE.str
        and isinstance(meta.get("dim"), int)
    )


def _unit_rows(rows: np.ndarray) -> bool:
    """Spot check: a few rows (first, middle, last) must be unit vectors."""
    if len(rows) == 0:
        return True
    picks = sorted({0, len(rows) // 2, len(rows) - 1})
    norms = np.linalg.norm(np.asarray(rows[picks], dtype=np.float64), axis=1)
    return bool(np.all(np.abs(norms - 1.0) < 1e-3))


def _data_offset(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """Byte offset of the array data in a ``.npy`` file, with its shape and dtype."""
    with path.open("rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if fortran:
            raise ValueError("Fortran-ordered cache file")
        return f.tell(), tuple(shape), np.dtype(dtype)


class PartialBuild:
    """Rows of a build in progress: kept in RAM, mirrored to disk when a cache folder is usable."""

    def __init__(self, spec: CacheSpec, dim: int, rows: np.ndarray, done: int, path: Path | None) -> None:
        self.spec = spec
        self.dim = dim
        self.rows = rows
        self.done = done
        self.path = path  # the .partial.npy mirror, or None
        self.started = time.monotonic()
        self.resumed_from = done
        self._offset: int | None = None

    @property
    def complete(self) -> bool:
        return self.done >= self.spec.count

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=DTYPE)
        end = self.done + len(block)
        if block.ndim != 2 or block.shape[1] != self.dim or end > self.spec.count:
            raise ValueError(f"block {block.shape} does not fit rows {self.done}..{self.spec.count}")
        self.rows[self.done : end] = block
        if self.path is not None:
            self._mirror(block)
        self.done = end

    def _mirror(self, block: np.ndarray) -> None:
        assert self.path is not None
        try:
            if self._offset is None:
                self._offset = _data_offset(self.path)[0]
            with self.path.open("r+b") as f:
                f.seek(self._offset + self.done * self.dim * DTYPE.itemsize)
                f.write(block.tobytes())
                f.flush()
                os.fsync(f.fileno())
            meta = self.spec.sidecar(self.dim, done=self.done + len(block))
            write_text_atomic(_partial_meta(self.path), json.dumps(meta, indent=1))
        except OSError as exc:  # e.g. a full disk: finish in RAM, rebuild after a restart
            log.warning("cannot write the embedding cache (%s); continuing in memory", exc)
            self.path = None


def _partial_meta(partial_npy: Path) -> Path:
    return partial_npy.with_name(partial_npy.name.removesuffix(".npy") + ".json")


class EmbeddingCache:
    """The cache folder; ``directory=None`` keeps everything in memory (rebuilt at every start)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def paths(self, spec: CacheSpec) -> tuple[Path, Path]:
        assert self.directory is not None
        return self.directory / f"{spec.key}.npy", self.directory / f"{spec.key}.json"

    def partial_paths(self, spec: CacheSpec) -> tuple[Path, Path]:
        assert self.directory is not None
        npy = self.directory / f"{spec.key}.partial.npy"
        return npy, _partial_meta(npy)

    def _discard(self, paths: Sequence[Path], why: str) -> None:
        log.warning("embedding cache %s: %s; rebuilding", paths[0], why)
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()

    def load(self, spec: CacheSpec) -> np.ndarray | None:
        """The finished embeddings, memory-mapped, or None (missing, stale or corrupt -> removed)."""
        if self.directory is None:
            return None
        npy, meta_path = self.paths(spec)
        if not npy.is_file() and not meta_path.is_file():
            return None
        meta = _read_json(meta_path)
        if not _matches(meta, spec):
            self._discard([npy, meta_path], "sidecar missing or for other settings")
            return None
        assert meta is not None
        try:
            rows = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            self._discard([npy, meta_path], f"unreadable ({exc})")
            return None
        if rows.shape != (spec.count, meta["dim"]) or rows.dtype != DTYPE or not _unit_rows(rows):
            self._discard([npy, meta_path], f"unexpected content {rows.shape} {rows.dtype}")
            return None
        return rows

    def start(self, spec: CacheSpec, dim: int) -> PartialBuild:
        """Resume a matching partial build, or begin a new one."""
        rows = np.zeros((spec.count, dim), dtype=DTYPE)
        if self.directory is None:
            return PartialBuild(spec, dim, rows, 0, None)
        npy, meta_path = self.partial_paths(spec)
        resumed = self._resume(spec, dim, rows, npy, meta_path)
        if resumed is not None:
            return resumed
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            mm = np.lib.format.open_memmap(npy, mode="w+", dtype=DTYPE, shape=(spec.count, dim))
            del mm  # only the header and the file size are needed; rows are written with plain I/O
            write_text_atomic(meta_path, json.dumps(spec.sidecar(dim, done=0), indent=1))
        except OSError as exc:
            log.warning(
                "cannot create the embedding cache in %s (%s); building in memory", self.directory, exc
            )
            return PartialBuild(spec, dim, rows, 0, None)
        return PartialBuild(spec, dim, rows, 0, npy)

    def _resume(
        self, spec: CacheSpec, dim: int, rows: np.ndarray, npy: Path, meta_path: Path
    ) -> PartialBuild | None:
        if not npy.is_file() and not meta_path.is_file():
            return None
        meta = _read_json(meta_path)
        done = meta.get("done") if meta else None
        if not _matches(meta, spec) or meta["dim"] != dim or not isinstance(done, int) or done < 0:
            self._discard([npy, meta_path], "partial build for other settings")
            return None
        try:
            offset, shape, dtype = _data_offset(npy)
            ok = shape == (spec.count, dim) and dtype == DTYPE
            ok = ok and npy.stat().st_size == offset + spec.count * dim * DTYPE.itemsize
            if ok and done:
                mm = np.load(npy, mmap_mode="r", allow_pickle=False)
                rows[:done] = mm[:done]
                del mm
                ok = _unit_rows(rows[:done])
        except (OSError, ValueError) as exc:
            self._discard([npy, meta_path], f"unreadable partial build ({exc})")
            return None
        if not ok or done > spec.count:
            self._discard([npy, meta_path], "partial build does not validate")
            return None
        log.info("resuming the embedding build at %d/%d labels", done, spec.count)
        return PartialBuild(spec, dim, rows, done, npy)

    def finish(self, build: PartialBuild, **extra: object) -> np.ndarray:
        """Publish a complete build; returns the rows (memory-mapped from the final file if saved)."""
        if not build.complete:
            raise ValueError(f"build incomplete: {build.done}/{build.spec.count}")
        if self.directory is None or build.path is None:
            return build.rows
        npy, meta_path = self.paths(build.spec)
        partial_npy, partial_meta = self.partial_paths(build.spec)
        try:
            # Sidecar first: a crash before the rename leaves a sidecar without data (rebuilt) and
            # the complete partial file, which the next start resumes and publishes at once.
            write_text_atomic(meta_path, json.dumps(build.spec.sidecar(build.dim, **extra), indent=1))
            os.replace(partial_npy, npy)
            with contextlib.suppress(OSError):
                partial_meta.unlink()
            rows = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("cannot publish the embedding cache %s (%s); keeping it in memory", npy, exc)
            return build.rows
        return rows
