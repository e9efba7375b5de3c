"""First run: an empty model folder is filled with the platform's default model, then served.

``serve`` starts the HTTP server at once; the inference lane downloads the default model (the
AXERA NPU model where pyaxengine is usable, the OpenVINO INT8 LCM model otherwise) with
:func:`pi_axera_sd.modeltools.hub.pull`, so the checksums, resume, mirror (``HF_ENDPOINT``) and
offline (``HF_HUB_OFFLINE``) behaviour are those of ``models pull``. Meanwhile ``/ready`` answers
"downloading model, N %" and a progress bar runs on stderr. ``PI_AXERA_SD_AUTO_DOWNLOAD=0`` turns
it off (the systemd unit does).

Progress is read from the Hugging Face cache rather than from huggingface_hub's own bars: the
expected files' sizes come from the hub's listing, and each file's bytes so far are those of its
blob (``blobs/<etag>``, or ``blobs/<etag>.<id>.incomplete`` while it downloads; huggingface_hub
2.x writes whole 10 MiB chunks). A dropped connection resumes within the run (a Range request);
a stopped run keeps the finished files in the cache, and the next start fetches only the rest.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pi_axera_sd import exitcodes
from pi_axera_sd.config import Settings
from pi_axera_sd.errors import PiAxeraError


class FirstRunFailed(PiAxeraError):
    """The first-run download failed (network, checksum): a later start may succeed, so the exit
    code is the restartable one (the unit keeps first-run downloads off anyway)."""

    exit_code = exitcodes.RUNTIME


log = logging.getLogger(__name__)

NPU_DEFAULT = "axera"
CPU_DEFAULT = "openvino"
_POLL_S = 0.5


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def default_spec(settings: Settings) -> str:
    """What the first run fetches: the setting, else the NPU model where an NPU is usable."""
    if settings.default_model:
        return settings.default_model
    from pi_axera_sd.runtime.axengine import axengine_available

    return NPU_DEFAULT if axengine_available() else CPU_DEFAULT


def _has_model_files(folder: Path, clip_dir: Path) -> bool:
    """Any file in ``folder`` but hidden ones and the CLIP model's (default models/clip): the download
    never writes over them. A wider question than "is there a model here" (engine.layout.find_model):
    a broken or partial model is files too."""
    if not folder.is_dir():
        return False
    clip = clip_dir.resolve()
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        hidden = any(p.startswith(".") for p in rel.parts)
        if path.is_file() and not hidden and not path.resolve().is_relative_to(clip):
            return True
    return False


def wants_first_run(settings: Settings) -> bool:
    """True when ``serve`` should download a model: enabled, no model path set, folder empty."""
    explicit = (
        settings.text_encoder_model,
        settings.unet_model,
        settings.vae_decoder_model,
        settings.vae_encoder_model,
        settings.text_model_dir,
    )
    return (
        settings.auto_download
        and not any(explicit)
        and not _has_model_files(settings.models_dir, settings.clip_dir)
    )


def check_first_run(settings: Settings, spec: str) -> None:
    """Before the server starts: raise when the first-run download cannot even begin, with one line
    that says what to do. An unknown ``PI_AXERA_SD_DEFAULT_MODEL`` or offline mode is the
    configuration's fault (exit 2); a hub that cannot be reached may be back later (exit 3)."""
    from huggingface_hub import constants

    from pi_axera_sd.modeltools.hub import (
        PullError,
        cannot_reach_line,
        display_url,
        resolve_spec,
        unreachable,
    )
    from pi_axera_sd.printed_commands import command, demo_hint
    from pi_axera_sd.server.core.preflight import ConfigError

    try:
        preset = resolve_spec(spec)
    except PullError as exc:
        raise ConfigError(f"PI_AXERA_SD_DEFAULT_MODEL: {exc}") from None
    d = settings.models_dir
    pull = command("models", "pull", spec, "--dest", d)
    if constants.is_offline_mode():
        raise ConfigError(
            f"{d} holds no model and HF_HUB_OFFLINE=1 forbids the first-run download: run '{pull}' where "
            f"the network is (or copy a model folder to {d}), then start again; {demo_hint()}"
        )
    endpoint = constants.ENDPOINT.rstrip("/")
    cause = unreachable(endpoint)
    if cause is not None:
        raise FirstRunFailed(
            f"{d} holds no model, and the first-run download of {preset.repo_id} cannot start: "
            f"{cannot_reach_line(display_url(endpoint), cause)}; or run '{pull}' where the network is; "
            f"{demo_hint()}"
        )


@dataclass
class _Blob:
    size: int
    path: Path  # blobs/<etag>; while downloading, blobs/<etag>.<id>.incomplete


def _partial_bytes(blob: Path) -> int:
    sizes = [0]
    for part in blob.parent.glob(f"{blob.name}*.incomplete"):
        try:
            sizes.append(part.stat().st_size)
        except OSError:  # finished (renamed) between the listing and the stat
            continue
    return max(sizes)


@dataclass
class CacheProgress:
    """Bytes of the expected files present in the Hugging Face cache, out of their total."""

    blobs: list[_Blob] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(b.size for b in self.blobs)

    def done(self) -> int:
        got = 0
        for blob in self.blobs:
            try:
                got += min(blob.size, blob.path.stat().st_size)
            except OSError:
                got += min(blob.size, _partial_bytes(blob.path))
        return got

    def drop_stale_parts(self) -> None:
        """Remove partial files a stopped run left: huggingface_hub 2.x names them per process
        (``<etag>.<id>.incomplete``) and never reuses them."""
        for blob in self.blobs:
            for part in blob.path.parent.glob(f"{blob.path.name}.*.incomplete"):
                part.unlink(missing_ok=True)

    @classmethod
    def for_repo(cls, repo_id: str, patterns: list[str] | None, revision: str | None) -> CacheProgress:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.utils import filter_repo_objects

        entries = [
            e
            for e in HfApi().list_repo_tree(repo_id, revision=revision, recursive=True)
            if getattr(e, "size", None) is not None
        ]
        wanted = filter_repo_objects(entries, allow_patterns=patterns, key=lambda e: e.path)
        folder = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "blobs"
        blobs = []
        for entry in wanted:
            etag = entry.lfs.sha256 if entry.lfs is not None else entry.blob_id
            blobs.append(_Blob(int(entry.size), folder / etag))
        return cls(blobs)


class FirstRunDownload:
    """One download of the default model into ``settings.models_dir``, observable while it runs."""

    def __init__(self, settings: Settings, say: Callable[[str], None] = _say) -> None:
        self.settings = settings
        self.spec = default_spec(settings)
        self.say = say
        self.fraction: float | None = None  # None until the listing is known
        self.active = False  # True while run() downloads
        self._stop = threading.Event()

    def status(self) -> str:
        if self.fraction is None:
            return f"downloading model ({self.spec}), starting"
        return f"downloading model, {int(self.fraction * 100)} %"

    def run(self) -> Any:
        """Download and place the model; raises :class:`~pi_axera_sd.modeltools.hub.PullError`."""
        from pi_axera_sd.modeltools.hub import PullError, pull, quiet_hub_client_logs, resolve_spec
        from pi_axera_sd.printed_commands import command

        preset = resolve_spec(self.spec)
        d = self.settings.models_dir
        self.active = True
        self.say(
            f"first run: {d} holds no model; downloading {preset.repo_id} ({preset.description}). "
            "PI_AXERA_SD_AUTO_DOWNLOAD=0 turns this off."
        )
        log.info("first-run download", extra={"fields": {"repo": preset.repo_id, "models_dir": str(d)}})
        quiet_hub_client_logs()
        progress = self._listing(preset)
        watcher = threading.Thread(
            target=self._watch, args=(progress,), name="first-run-progress", daemon=True
        )
        watcher.start()
        try:
            result = pull(self.spec, d, progress=False, say=self.say)
        except PullError as exc:
            self._end(watcher)  # close the bar first: the error gets a line of its own
            pull = command("models", "pull", self.spec, "--dest", d)
            line = f"first-run download of {preset.repo_id} failed: {exc} (or fetch it yourself: {pull})"
            self.say(f"error: {line}")
            raise FirstRunFailed(line) from exc
        finally:
            self._end(watcher)
        self.fraction = 1.0
        self.say(
            f"first run: {preset.repo_id} is in {d} ({len(result.files)} files; hub checksums: "
            f"{result.hub_check}); loading it"
        )
        return result

    def _end(self, watcher: threading.Thread) -> None:
        self._stop.set()
        watcher.join(timeout=5)
        self.active = False

    @staticmethod
    def _listing(preset: Any) -> CacheProgress | None:
        """What will be downloaded, before the pull starts (so stale parts can go); None if unknown."""
        try:
            progress = CacheProgress.for_repo(preset.repo_id, list(preset.allow_patterns or []) or None, None)
        except Exception as exc:  # the pull itself reports hub errors; the bar is only a nicety
            log.debug("no progress listing: %s", exc)
            return None
        progress.drop_stale_parts()
        return progress

    def _watch(self, progress: CacheProgress | None) -> None:
        """Poll the cache and draw one progress bar on stderr until the pull ends."""
        from tqdm import tqdm

        if progress is None:
            return
        total = max(1, progress.total)
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="downloading model", file=sys.stderr, mininterval=1.0
        ) as bar:
            while True:
                done = progress.done()
                self.fraction = min(1.0, done / total)
                bar.update(done - bar.n)
                if self._stop.wait(_POLL_S):
                    bar.update(progress.done() - bar.n)
                    return
