"""Pull a model folder from the Hugging Face hub (or a mirror) into the folder the engine loads.

huggingface_hub does the transfer: the shared cache, resume of dropped connections, size checks,
``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE``. What this module adds:

- presets (``axera``/``npu`` -> ``AXERA-TECH/lcm-lora-sdv1-5``, NPU files only; ``openvino``/``cpu``
  -> ``OpenVINO/LCM_Dreamshaper_v7-int8-ov`` and ``openvino-fp16``, the OpenVINO IR files only);
- an integrity pass after the download: every file is hashed against the hub's listing
  (``HfApi.verify_repo_checksums``: sha256 for LFS files, the git blob id for the rest; plain HTTP
  downloads are otherwise only size-checked) and against our ``manifest.json`` when the model has one;
- finding the model inside the repo (the folder holding ``unet.axmodel``/``unet.onnx``, or the
  ``model_index.json`` of a diffusers/optimum export, wherever the publisher put it) and placing
  its files at ``--dest`` as hard links into the cache (a copy across filesystems, or
  symlinks/copies on request), so ``models/`` holds exactly one model;
- one-line errors for the usual failures (unknown repo, gated repo, no network, offline cache miss).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pi_axera_sd.engine.contract import (
    MANIFEST,
    MODEL_INDEX,
    UNET,
    axera_component_files,
    diffusers_component_files,
    openvino_layout_patterns,
)
from pi_axera_sd.engine.layout import check_layout, missing_files_message, resolve_layout
from pi_axera_sd.errors import ModelError, PiAxeraError
from pi_axera_sd.modeltools.verify import ManifestCheck, check_manifest

log = logging.getLogger(__name__)

STATE_FILE = ".pi-axera-sd-pull.json"  # which files in dest a pull placed (safe to replace later)
# AXERA layout: the UNet file; diffusers/optimum layout: model_index.json beside the component folders
MODEL_MARKERS = (f"{UNET}.axmodel", f"{UNET}.onnx", MODEL_INDEX)
LINK_MODES = ("hardlink", "symlink", "copy")
# files of a component the engine loads, in either layout: a pull refuses to mix them with another model's
COMPONENT_FILES = (*axera_component_files(), *diffusers_component_files())
# what the engine reads of a diffusers/optimum OpenVINO export (no ONNX/PyTorch copies, no extras)
OPENVINO_LAYOUT_FILES = openvino_layout_patterns()


class PullError(PiAxeraError):
    """A pull that could not finish; the message is one line meant for the user."""


@dataclass(frozen=True)
class Preset:
    name: str
    repo_id: str
    description: str
    allow_patterns: tuple[str, ...] | None = None  # None: every file of the repo
    subfolder: str | None = None  # repo folder holding the model; None: found after the download


PRESETS: dict[str, Preset] = {
    "axera": Preset(
        "axera",
        "AXERA-TECH/lcm-lora-sdv1-5",
        "AXERA's SD1.5 + LCM-LoRA compiled for the AX650N NPU (.axmodel, needs pyaxengine)",
        # the compiled graphs, time embeddings and tokenizer; no demo images, no ONNX duplicates
        allow_patterns=("*.axmodel", "*.npy", "*.json", "*.txt"),
    ),
    "openvino": Preset(
        "openvino",
        "OpenVINO/LCM_Dreamshaper_v7-int8-ov",
        "LCM Dreamshaper v7 as OpenVINO IR, INT8 UNet (~860 MB), for CPUs; no torch needed",
        allow_patterns=OPENVINO_LAYOUT_FILES,
    ),
    "openvino-fp16": Preset(
        "openvino-fp16",
        "OpenVINO/LCM_Dreamshaper_v7-fp16-ov",
        "the same model with FP16 weights (larger; a little closer to the original)",
        allow_patterns=OPENVINO_LAYOUT_FILES,
    ),
}
ALIASES = {
    "npu": "axera",
    "ax650": "axera",
    "ax650n": "axera",
    "lcm-lora-sdv1-5": "axera",
    "cpu": "openvino",
    "openvino-int8": "openvino",
}


def resolve_spec(spec: str) -> Preset:
    """A preset by name, alias or repo id, or any other ``owner/name``: that repo, all its files."""
    key = spec.strip().lower()
    if key in PRESETS or key in ALIASES:
        return PRESETS[ALIASES.get(key, key)]
    for preset in PRESETS.values():  # a preset's repo id means the preset (its file patterns too)
        if preset.repo_id.lower() == key:
            return preset
    parts = spec.strip().split("/")
    if len(parts) == 2 and all(parts):
        return Preset(spec.strip(), spec.strip(), "hub repository")
    names = ", ".join(n for p in PRESETS for n in (p, *(a for a, t in ALIASES.items() if t == p)))
    raise PullError(f"{spec!r} is neither a preset ({names}) nor a hub repo id like owner/name")


def preset_help() -> str:
    lines = [f"  {p.name:<13} {p.repo_id}: {p.description}" for p in PRESETS.values()]
    for alias, target in ALIASES.items():
        lines.append(f"  {alias:<13} = {target}")
    return "\n".join(lines)


# ---- results --------------------------------------------------------------------------------------


@dataclass
class PullResult:
    repo_id: str
    revision: str
    commit: str
    endpoint: str
    offline: bool
    snapshot: Path
    subfolder: str  # "" = the repo root
    dest: Path
    files: list[tuple[str, int]] = field(default_factory=list)  # placed files (relative) and sizes
    placed_by: dict[str, str] = field(default_factory=dict)  # file -> hardlink | symlink | copy
    hub_check: str = ""
    manifest: ManifestCheck | None = None
    removed: list[str] = field(default_factory=list)  # stale files of an earlier pull
    elapsed_s: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


# ---- errors ---------------------------------------------------------------------------------------


def display_url(url: str) -> str:
    """``url`` without credentials (an HF_ENDPOINT may carry user:password@)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _redact(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


# The HTTP client huggingface_hub uses is its own business (httpx up to 2.4, httpx2 from 2.5, requests
# before 1.0): its errors are recognised by the library they come from, never by importing it.
_HTTP_CLIENTS = ("httpx", "httpx2", "httpcore", "requests", "urllib3", "aiohttp")


def is_transport_error(exc: BaseException) -> bool:
    """A network failure (refused, reset, timed out, DNS), from the OS or from the hub's HTTP client."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if getattr(exc, "response", None) is not None:  # the server answered: an HTTP status, not the network
        return False
    return any(cls.__module__.split(".")[0] in _HTTP_CLIENTS for cls in type(exc).__mro__)


PROBE_TIMEOUT_S = 10.0
_HUB_HTTP_LOGGER = "huggingface_hub.utils._http"  # where huggingface_hub logs each failed try and retry


class _FirstRetryOnly(logging.Filter):
    """huggingface_hub logs two warnings per failed try (the error, then "Retrying in Ns"), up to five
    tries per request: the first says the network is unwell, the rest only bury the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.shown = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or logging.getLogger(_HUB_HTTP_LOGGER).isEnabledFor(
            logging.DEBUG
        ):
            return True
        if self.shown:
            return False
        self.shown = True
        record.msg = f"{record.getMessage()}; retrying (further retries are not logged; -v shows them)"
        record.args = ()
        return True


def quiet_hub_client_logs() -> None:
    """One format and one line per event for the hub client: its records go through the root handler
    only (huggingface_hub also installs a stream handler of its own, so each was printed twice), the
    HTTP client's per-request INFO lines are dropped, and at most one retry warning is shown."""
    import huggingface_hub  # noqa: F401  (installs its handler, which is then removed)

    logging.getLogger("huggingface_hub").handlers.clear()
    http = logging.getLogger(_HUB_HTTP_LOGGER)
    if not any(isinstance(f, _FirstRetryOnly) for f in http.filters):
        http.addFilter(_FirstRetryOnly())
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for name in ("httpx", "httpx2", "httpcore"):  # one INFO line per request otherwise
            logging.getLogger(name).setLevel(logging.WARNING)


def cannot_reach_line(endpoint: str, cause: str) -> str:
    return (
        f"cannot reach {endpoint} ({cause}); check the network or proxy, point HF_ENDPOINT at a mirror, "
        "or set HF_HUB_OFFLINE=1 to use the local cache"
    )


def unreachable(endpoint: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``endpoint`` cannot be reached at all (one request, no retries), or None when it answers.

    huggingface_hub retries a request that meets no server five times with back-off (about 23 s a
    call, and a pull makes several calls, each printing two warnings a try). One probe first turns a
    machine without a network into one line at once. Any HTTP answer counts as reachable: the real
    requests then explain a 404 or 401 themselves. The hub's own HTTP session is used, so its proxy
    settings and headers apply."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=timeout_s)
    except Exception as exc:
        if is_transport_error(exc):
            return _first_line(exc)
        log.debug("probe of %s: %s", endpoint, exc)
    return None


def explain_hub_error(
    exc: BaseException, *, repo_id: str, revision: str, endpoint: str, cache: str, offline: bool
) -> str:
    """One line that says what went wrong and what to do, for the errors huggingface_hub raises."""
    from huggingface_hub import errors as hf

    from pi_axera_sd.printed_commands import command

    where = f"{endpoint}/{repo_id}"
    if isinstance(exc, hf.GatedRepoError):
        return (
            f"{repo_id} is gated: accept its conditions at {where} while logged in, then pass a token "
            "that has access (--token or the HF_TOKEN environment variable)"
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} on {endpoint} (check --revision)"
    if isinstance(exc, hf.RepositoryNotFoundError):
        return (
            f"repository {repo_id} not found on {endpoint} (check the name; a private repo needs "
            "--token or HF_TOKEN)"
        )
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return f"a file of {repo_id} listed by the hub is missing on {endpoint}: {_first_line(exc)}"
    if isinstance(exc, hf.IncompleteSnapshotError):
        return (
            f"the cached copy of {repo_id} ({revision}) in {cache} is incomplete and the hub cannot be "
            "reached; run the pull again with network access to finish it"
        )
    if isinstance(exc, hf.LocalEntryNotFoundError | hf.OfflineModeIsEnabled):
        cause = _root_cause(exc)
        if offline or isinstance(cause, hf.OfflineModeIsEnabled):
            return (
                f"offline mode (HF_HUB_OFFLINE=1 or --offline): {repo_id} ({revision}) is not in the local "
                f"cache {cache}; pull it once with network access, or copy a model folder here and run "
                f"'{command('models', 'verify', 'DIR')}'"
            )
        if isinstance(cause, hf.HfHubHTTPError):
            return _http_error_line(cause, repo_id, endpoint)
        return cannot_reach_line(endpoint, _first_line(cause))
    if isinstance(exc, hf.HfHubHTTPError):
        return _http_error_line(exc, repo_id, endpoint)
    if is_transport_error(exc):
        return (
            f"network error while downloading from {endpoint}: {_first_line(exc)}; run the same command "
            "again to continue (finished files are kept in the cache)"
        )
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return (
            f"a download from {endpoint} ended short ({_first_line(exc)}); run the same command again "
            "to fetch it afresh"
        )
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _http_error_line(exc: Any, repo_id: str, endpoint: str) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return f"{endpoint} refused the request for {repo_id} (401): the token is missing or invalid"
    if status == 403:
        return f"{endpoint} refused access to {repo_id} (403): the token has no access to this repo"
    return f"the hub at {endpoint} answered {status} for {repo_id}: {_first_line(exc)}"


# ---- the model inside the snapshot ----------------------------------------------------------------


def find_model_dirs(root: Path) -> list[str]:
    """Folders under ``root`` (relative, '' = root) holding a UNet file, shallowest first."""
    found = []
    for marker in MODEL_MARKERS:
        for path in root.rglob(marker):
            rel = path.parent.relative_to(root)
            if not any(part.startswith(".") for part in rel.parts):
                found.append(rel.as_posix() if rel.parts else "")
    return sorted(set(found), key=lambda p: (p.count("/") + bool(p), p))


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


def _choose_subfolder(snapshot: Path, wanted: str | None, repo_id: str, resolution: str | None = None) -> str:
    found = find_model_dirs(snapshot)
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


def _plan_folder(
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


def _within(folder: str, patterns: list[str] | None) -> list[str]:
    """Restrict download patterns to one repo folder (fnmatch: '*' also matches '/')."""
    return [f"{folder}/{p}" for p in patterns] if patterns else [f"{folder}/*"]


# ---- placing files at dest ----------------------------------------------------------------------


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


# ---- integrity ------------------------------------------------------------------------------------


def _forget_cached(snapshot: Path, rel: str) -> None:
    """Drop a bad file from the cache (snapshot link and blob) so the next pull fetches it again."""
    pointer = snapshot / rel
    try:
        blob = pointer.resolve()
        pointer.unlink(missing_ok=True)
        if blob != pointer and blob.is_file():
            blob.unlink()
    except OSError as exc:
        log.warning("could not remove %s from the cache: %s", pointer, exc)


def _hub_checksums(
    api: Any,
    repo_id: str,
    commit: str,
    cache_dir: str | None,
    snapshot: Path,
    allow_patterns: Sequence[str] | None,
) -> str:
    """Hash the cached files against the hub's tree listing; raise PullError on any difference."""
    from huggingface_hub.utils import filter_repo_objects

    result = api.verify_repo_checksums(repo_id, revision=commit, cache_dir=cache_dir)
    missing = list(filter_repo_objects(result.missing_paths, allow_patterns=allow_patterns))
    if result.mismatches:
        for bad in result.mismatches:
            _forget_cached(snapshot, bad["path"])
        details = "; ".join(
            f"{m['path']} {m['algorithm']} {m['actual'][:12]}… != hub {m['expected'][:12]}…"
            for m in result.mismatches
        )
        raise PullError(
            f"integrity check failed for {len(result.mismatches)} file(s) of {repo_id}: {details}. "
            "The bad files were removed from the cache; run the same command again to download them afresh"
        )
    if missing:
        raise PullError(f"{repo_id}: files listed by the hub were not downloaded: {', '.join(missing[:8])}")
    return f"{result.checked_count} files match (sha256 for LFS files, git blob id for others)"


# ---- pull -----------------------------------------------------------------------------------------


def pull(
    spec: str,
    dest: str | Path = "models",
    *,
    revision: str | None = None,
    include: Sequence[str] | None = None,
    subfolder: str | None = None,
    resolution: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool = False,
    link: str = "hardlink",
    force: bool = False,
    check_hashes: bool = True,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> PullResult:
    """Download ``spec`` (preset or repo id), check it, and place its model folder at ``dest``."""
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.utils import disable_progress_bars

    started = time.perf_counter()
    preset = resolve_spec(spec)
    patterns = list(include) if include else (list(preset.allow_patterns) if preset.allow_patterns else None)
    revision = revision or constants.DEFAULT_REVISION
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    shown = display_url(endpoint)  # what messages name; the real one may hold credentials
    offline = offline or constants.is_offline_mode()
    cache = str(cache_dir or constants.HF_HUB_CACHE)
    from urllib.parse import urlsplit

    secrets = [token, os.environ.get("HF_TOKEN"), urlsplit(endpoint).password]
    dest = Path(dest)
    if not offline and (cause := unreachable(endpoint)) is not None:
        raise PullError(_redact(cannot_reach_line(shown, cause), secrets))
    if not progress:
        disable_progress_bars()
    planned = None
    if not offline and (resolution is not None or (subfolder or preset.subfolder) is None):
        try:
            planned = _plan_folder(
                HfApi(endpoint=endpoint, token=token), preset.repo_id, revision, subfolder, resolution
            )
        except PiAxeraError:
            raise
        except Exception as exc:  # the download below meets the same fault and explains it
            log.debug("listing %s failed: %s", preset.repo_id, exc)
        if planned:  # "" (the repo root) cannot be told apart from its subfolders by a pattern
            patterns = _within(planned, patterns)

    say(
        f"pulling {preset.repo_id} ({revision}) "
        + ("from the local cache only (offline)" if offline else f"from {shown}")
        + f" into the cache {cache}"
    )
    try:
        snapshot = Path(
            snapshot_download(
                preset.repo_id,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=patterns,
                token=token,
                endpoint=endpoint,
                local_files_only=offline,
            )
        )
    except PiAxeraError:
        raise
    except Exception as exc:  # every hub/network failure becomes one clear line
        line = explain_hub_error(
            exc, repo_id=preset.repo_id, revision=revision, endpoint=shown, cache=cache, offline=offline
        )
        raise PullError(_redact(line, secrets)) from exc
    commit = snapshot.name

    hub_check = "skipped (--no-hash)"
    if check_hashes and offline:
        hub_check = "not re-checked against the hub (offline)"
    elif check_hashes:
        api = HfApi(endpoint=endpoint, token=token)
        try:
            cache_arg = str(cache_dir) if cache_dir else None
            hub_check = _hub_checksums(api, preset.repo_id, commit, cache_arg, snapshot, patterns)
        except PiAxeraError:
            raise
        except Exception as exc:
            line = explain_hub_error(
                exc,
                repo_id=preset.repo_id,
                revision=revision,
                endpoint=shown,
                cache=cache,
                offline=offline,
            )
            raise PullError(_redact(f"checksum listing failed: {line}", secrets)) from exc

    folder = _choose_subfolder(snapshot, subfolder or preset.subfolder or planned, preset.repo_id, resolution)
    source = snapshot / folder if folder else snapshot
    manifest = check_manifest(source, hashes=check_hashes)
    if manifest is not None and not manifest.ok:
        raise PullError(
            f"{preset.repo_id}: files differ from its {MANIFEST}: {'; '.join(manifest.problems)} "
            "(the repo's files do not match the manifest its publisher wrote; nothing was placed)"
        )

    dest.mkdir(parents=True, exist_ok=True)
    meta = {"repo_id": preset.repo_id, "revision": revision, "commit": commit, "subfolder": folder}
    files, placed_by, removed = place_model(source, dest, mode=link, force=force, meta=meta)
    try:
        placed = resolve_layout(dest)
        check_layout(placed)
    except ModelError as exc:  # the advice to run 'pull' would send the user in a circle: files only
        what = missing_files_message(placed, exc.problems) if exc.problems else str(exc)
        raise PullError(
            f"{preset.repo_id} was downloaded to {dest}, but it is not a complete model: {what}"
        ) from exc
    return PullResult(
        repo_id=preset.repo_id,
        revision=revision,
        commit=commit,
        endpoint=shown,
        offline=offline,
        snapshot=snapshot,
        subfolder=folder,
        dest=dest,
        files=files,
        placed_by=placed_by,
        hub_check=hub_check,
        manifest=manifest,
        removed=removed,
        elapsed_s=time.perf_counter() - started,
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def render_result(result: PullResult) -> str:
    where = f"folder {result.subfolder!r} of the repo" if result.subfolder else "the repo root"
    lines = [
        f"pulled {result.repo_id} @ {result.commit[:12]} ({where}) in {result.elapsed_s:.1f} s",
        f"model folder: {result.dest}  ({len(result.files)} files, {human_bytes(result.total_bytes)})",
    ]
    hows = sorted(set(result.placed_by.values()))
    for rel, size in result.files:
        lines.append(f"  {rel:<48} {human_bytes(size):>9}  {result.placed_by.get(rel, '')}")
    if result.removed:
        lines.append(f"removed files of the previous pull: {', '.join(result.removed)}")
    lines.append(f"hub checksums: {result.hub_check}")
    if result.manifest is not None:
        lines.append(f"manifest.json: {result.manifest.summary()}")
    else:
        lines.append("manifest.json: none in this model (sizes above are as the hub listed them)")
    if "copy" in hows:
        lines.append(
            "note: some files were copied (the cache is on another filesystem); --link symlink saves space"
        )
    if any(rel.endswith(".axmodel") for rel, _ in result.files):
        from pi_axera_sd.runtime.axengine import axengine_available

        if not axengine_available():
            lines.append(
                "note: .axmodel files run on the AX650N NPU through pyaxengine, which is not installed here"
            )
    dest = str(result.dest)
    from pi_axera_sd.printed_commands import command

    serve = command("serve") if Path(dest) == Path("models") else command("serve", "--models", dest)
    lines += ["next:", f"  {command('models', 'verify', dest)}", f"  {serve}"]
    return "\n".join(lines)
