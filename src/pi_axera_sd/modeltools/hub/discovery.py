"""Finding the model folder inside a downloaded repo (the one holding ``unet.*`` or a
``model_index.json``), by resolution where a repo holds several."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pi_axera_sd.engine.layout import MODEL_MARKERS, find_model
from pi_axera_sd.modeltools.hub.presets import PullError

log = logging.getLogger(__name__)


# AXERA layout: the UNet file; diffusers/optimum layout: model_index.json beside the component folders


_SIZE = re.compile(r"(\d+)x(\d+)")


DEFAULT_RESOLUTION = "512x512"  # a model folder with no size in its name (AXERA's models/) is SD1.5's


def folder_resolution(folder: str) -> str:
    """``models_320x320`` -> ``320x320``; a folder with no size in its name is 512x512."""
    found = _SIZE.findall(folder.rsplit("/", 1)[-1])
    return f"{found[-1][0]}x{found[-1][1]}" if found else DEFAULT_RESOLUTION


def model_dirs_in(paths: Sequence[str]) -> list[str]:
    """Folders (relative, '' = root) of a repo's file list that hold a UNet, shallowest first."""
    found = {p.rpartition("/")[0] for p in paths if p.rpartition("/")[2] in MODEL_MARKERS}
    return sorted(found, key=lambda p: (p.count("/") + bool(p), p))


def choose_model_dir(found: Sequence[str], resolution: str | None, repo_id: str) -> str:
    """The one model folder to fetch: by ``resolution`` when given; a repo with several folders and
    no choice stops with the list (the variants are large: fetching all would waste gigabytes)."""
    listing = ", ".join(f"{f or '.'} ({folder_resolution(f)})" for f in found)
    if resolution is not None:
        wanted = resolution.strip().lower()
        matches = [f for f in found if folder_resolution(f) == wanted]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise PullError(f"{repo_id} has no {wanted} model folder (model folders: {listing or 'none'})")
        raise PullError(f"{repo_id} has several {wanted} model folders ({listing}): choose with --subfolder")
    if len(found) > 1:
        sizes = " or ".join(f"--resolution {folder_resolution(f)}" for f in found)
        raise PullError(f"{repo_id} holds several model folders: {listing}; choose one with {sizes}")
    return found[0]


def choose_subfolder(snapshot: Path, wanted: str | None, repo_id: str, resolution: str | None = None) -> str:
    found = find_model(snapshot)
    if wanted is not None:
        wanted = wanted.strip("/")
        if wanted in found:
            return wanted
        raise PullError(
            f"{repo_id}: folder {wanted!r} holds no {' or '.join(MODEL_MARKERS)} "
            f"(model folders found: {found or 'none'})"
        )
    if not found:
        listing = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
        shown = ", ".join(listing[:12]) + (" ..." if len(listing) > 12 else "")
        raise PullError(
            f"{repo_id} has no {' or '.join(MODEL_MARKERS)} in the downloaded files ({shown or 'none'}); "
            "use --include to fetch other files, or --subfolder"
        )
    return choose_model_dir(found, resolution, repo_id)


def plan_folder(
    api: Any, repo_id: str, revision: str, subfolder: str | None, resolution: str | None
) -> str | None:
    """Before downloading: the model folder to fetch, from the repo's file list (one request), so
    only that folder's files come down. None: no choice needed (or the listing names no UNet)."""
    found = model_dirs_in(api.list_repo_files(repo_id, revision=revision))
    if subfolder is not None or not found:
        return None
    if len(found) == 1 and resolution is None:
        return None
    return choose_model_dir(found, resolution, repo_id)


def within_folder(folder: str, patterns: list[str] | None) -> list[str]:
    """Restrict download patterns to one repo folder (fnmatch: '*' also matches '/')."""
    return [f"{folder}/{p}" for p in patterns] if patterns else [f"{folder}/*"]
