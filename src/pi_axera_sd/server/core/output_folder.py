"""The copies of images saved to OUTPUT_DIR: a side effect of a job, never its failure.

A copy that cannot be written (a full disk, a read-only or missing folder) leaves the answer as it
is: the image is answered, one ERROR line names the folder and the reason, the failure is counted
(``pi_axera_sd_save_failures``, never as a runtime failure), and ``/health`` shows the folder as
failing until a later copy is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from pi_axera_sd.server.core.host_work import EncodedImage

log = logging.getLogger(__name__)


class OutputFolder:
    def __init__(self, folder: Path, failures: Counter) -> None:
        self.folder = folder
        self._failures = failures
        self.error: str | None = None
        self.failing_since: float | None = None
        self.saved = 0

    def record(self, images: Iterable[EncodedImage]) -> None:
        """What the host threads reported for one batch's copies."""
        for image in images:
            if image.save_error is not None:
                self._failed(image.save_error)
            elif image.saved_to is not None:
                self.saved += 1
                self.error = self.failing_since = None

    def _failed(self, reason: str) -> None:
        self._failures.inc()
        if self.failing_since is None:
            self.failing_since = time.time()
        self.error = reason
        log.error(
            "image not saved: output folder not writable or full; the image was answered",
            extra={"fields": {"output_dir": str(self.folder), "reason": reason}},
        )

    def as_dict(self) -> dict[str, Any]:
        state = "failing" if self.error is not None else "ok"
        body: dict[str, Any] = {"folder": str(self.folder), "state": state, "saved": self.saved}
        if self.error is not None:
            body["error"] = f"output folder not writable or full: {self.error}"
            body["failing_since"] = self.failing_since
        return body
