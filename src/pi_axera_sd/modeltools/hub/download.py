"""``pull``: download a model with huggingface_hub, check it, place it; and its report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pi_axera_sd.engine.contract import (
    MANIFEST,
)
from pi_axera_sd.engine.layout import check_layout, missing_files_message, resolve_layout
from pi_axera_sd.errors import ModelError, PiAxeraError
from pi_axera_sd.modeltools.hub.discovery import choose_subfolder, plan_folder, within_folder
from pi_axera_sd.modeltools.hub.network import (
    cannot_reach_line,
    display_url,
    explain_hub_error,
    redact_secrets,
    unreachable,
)
from pi_axera_sd.modeltools.hub.placement import place_model
from pi_axera_sd.modeltools.hub.presets import PullError, resolve_spec
from pi_axera_sd.modeltools.hub.verify import hub_checksums
from pi_axera_sd.modeltools.verify import ManifestCheck, check_manifest

log = logging.getLogger(__name__)


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
        raise PullError(redact_secrets(cannot_reach_line(shown, cause), secrets))
    if not progress:
        disable_progress_bars()
    planned = None
    if not offline and (resolution is not None or (subfolder or preset.subfolder) is None):
        try:
            planned = plan_folder(
                HfApi(endpoint=endpoint, token=token), preset.repo_id, revision, subfolder, resolution
            )
        except PiAxeraError:
            raise
        except Exception as exc:  # the download below meets the same fault and explains it
            log.debug("listing %s failed: %s", preset.repo_id, exc)
        if planned:  # "" (the repo root) cannot be told apart from its subfolders by a pattern
            patterns = within_folder(planned, patterns)

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
        raise PullError(redact_secrets(line, secrets)) from exc
    commit = snapshot.name

    hub_check = "skipped (--no-hash)"
    if check_hashes and offline:
        hub_check = "not re-checked against the hub (offline)"
    elif check_hashes:
        api = HfApi(endpoint=endpoint, token=token)
        try:
            cache_arg = str(cache_dir) if cache_dir else None
            hub_check = hub_checksums(api, preset.repo_id, commit, cache_arg, snapshot, patterns)
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
            raise PullError(redact_secrets(f"checksum listing failed: {line}", secrets)) from exc

    folder = choose_subfolder(snapshot, subfolder or preset.subfolder or planned, preset.repo_id, resolution)
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
