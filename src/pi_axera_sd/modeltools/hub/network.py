"""The hub client's failures as one line each, its logs made quiet, and one probe of the network."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def display_url(url: str) -> str:
    """``url`` without credentials (an HF_ENDPOINT may carry user:password@)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def redact_secrets(text: str, secrets: Sequence[str | None]) -> str:
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
