"""Placing a model's files at the destination folder: hard links into the cache (or symlinks or
copies), a state file that says which files a pull placed, stale files of an earlier pull removed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from pi_axera_sd.engine.contract import (
    axera_component_files,
    diffusers_component_files,
)
from pi_axera_sd.modeltools.hub.presets import PullError

log = logging.getLogger(__name__)


STATE_FILE = ".pi-axera-sd-pull.json"  # which files in dest a pull placed (safe to replace later)


LINK_MODES = ("hardlink", "symlink", "copy")


# files of a component the engine loads, in either layout: a pull refuses to mix them with another model's
COMPONENT_FILES = (*axera_component_files(), *diffusers_component_files())


def _read_state(dest: Path) -> dict[str, Any]:
    try:
        return json.loads((dest / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _already_placed(target: Path, source: Path, mode: str, copied_before: bool) -> bool:
    """Whether ``target`` already is ``source`` placed the way ``mode`` asks (nothing to redo)."""
    if not (target.exists() and target.is_symlink() == (mode == "symlink")):
        return False
    if _same_file(target, source):
        return mode != "copy"  # a link where a standalone copy is wanted must be replaced
    # a copy (asked for, or a hard link that fell back) of this very commit: keep, don't copy again
    return mode != "symlink" and copied_before and target.stat().st_size == source.stat().st_size


def _place_one(source: Path, target: Path, mode: str) -> str:
    """Put ``source`` at ``target`` atomically; returns how (a hard link falls back to a copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.pull-tmp")
    tmp.unlink(missing_ok=True)
    how = mode
    if mode == "symlink":
        os.symlink(source, tmp)
    elif mode == "hardlink":
        try:
            os.link(source.resolve(), tmp)
        except OSError:  # another filesystem, or links not allowed: a copy still works
            how = "copy"
    if how == "copy":
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return how


def place_model(
    source: Path,
    dest: Path,
    *,
    mode: str = "hardlink",
    force: bool = False,
    meta: dict[str, Any] | None = None,
) -> tuple[list[tuple[str, int]], dict[str, str], list[str]]:
    """Make ``dest`` hold the files of ``source`` (a folder of the snapshot).

    Files an earlier pull placed are replaced and, when no longer part of the model, removed;
    other files that would be overwritten, or component files of another model, stop the pull
    unless ``force``. Returns (files and sizes, how each was placed, removed stale files).
    """
    if mode not in LINK_MODES:
        raise ValueError(f"mode must be one of {LINK_MODES}")
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    previous = set(_read_state(dest).get("files", []))
    conflicts = []
    for rel in files:
        target = dest / rel
        exists = target.exists() or target.is_symlink()
        if exists and not _same_file(target, source / rel) and rel not in previous and not force:
            conflicts.append(rel)
    foreign = (
        []
        if force
        else [n for n in COMPONENT_FILES if n not in files and n not in previous and (dest / n).is_file()]
    )
    if conflicts or foreign:
        names = ", ".join((conflicts + foreign)[:8]) + (" ..." if len(conflicts) + len(foreign) > 8 else "")
        raise PullError(
            f"{dest} already holds files of another model ({names}); pull into an empty --dest, "
            "or pass --force to replace them"
        )
    if force:
        others = [n for n in COMPONENT_FILES if n not in files and n not in previous and (dest / n).is_file()]
        if others:
            log.warning("--force: %s keeps files of another model: %s", dest, ", ".join(others))
    same_commit = meta is not None and _read_state(dest).get("commit") == meta.get("commit")
    placed_by: dict[str, str] = {}
    for rel in files:
        target, src = dest / rel, source / rel
        if _already_placed(target, src, mode, same_commit and rel in previous):
            placed_by[rel] = "kept"
            continue
        placed_by[rel] = _place_one(src, target, mode)
    removed = []
    for rel in sorted(previous - set(files)):
        stale = dest / rel
        if stale.is_file() or stale.is_symlink():
            stale.unlink()
            removed.append(rel)
    state = {**(meta or {}), "files": files, "link": mode, "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (dest / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    sizes = [(rel, (dest / rel).stat().st_size) for rel in files]
    return sizes, placed_by, removed


def forget_cached(snapshot: Path, rel: str) -> None:
    """Drop a bad file from the cache (snapshot link and blob) so the next pull fetches it again."""
    pointer = snapshot / rel
    try:
        blob = pointer.resolve()
        pointer.unlink(missing_ok=True)
        if blob != pointer and blob.is_file():
            blob.unlink()
    except OSError as exc:
        log.warning("could not remove %s from the cache: %s", pointer, exc)
