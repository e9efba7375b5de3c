"""The integrity pass after a download: every file hashed against the hub's own listing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pi_axera_sd.modeltools.hub.placement import forget_cached
from pi_axera_sd.modeltools.hub.presets import PullError

log = logging.getLogger(__name__)


def hub_checksums(
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
            forget_cached(snapshot, bad["path"])
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
