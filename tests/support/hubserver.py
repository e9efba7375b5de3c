"""A local stand-in for the Hugging Face hub's file API, serving files a test made.

It answers what ``huggingface_hub`` 2.x requests for ``snapshot_download`` (found by reading its
source and by the request log below):

- ``GET /api/models/{repo}/revision/{rev}``: model info, whose ``sha`` pins the commit;
- ``GET /api/models/{repo}/tree/{rev}?recursive=True``: the file list, with ``lfs.oid`` = sha256 for
  LFS files (also what ``HfApi.verify_repo_checksums`` compares against);
- ``HEAD /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit`` + ``ETag`` + ``Content-Length`` for small
  files; for LFS files a 302 to a second origin (the "CDN") with ``X-Linked-Etag`` / ``X-Linked-Size``,
  as the real hub does, so the client does not follow it and drops its token for the download;
- ``GET`` of either URL, with ``Range: bytes=N-`` answered by 206 (how a dropped download resumes).

Unknown repos get 404 ``X-Error-Code: RepoNotFound``; a gated repo's files 401/403 ``GatedRepo``.
Faults a test can switch on per file: ``corrupt`` (same length, other bytes), ``drop_once`` (the
first full GET is cut halfway), ``fail`` (500), ``slow`` (the body is sent in pieces over
``slow_s`` seconds, so a test can watch a download in progress or interrupt it).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".onnx", ".data", ".npy", ".axmodel", ".bin", ".safetensors")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Request:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    commit: str
    gated: bool = False
    corrupt: set[str] = field(default_factory=set)
    drop_once: set[str] = field(default_factory=set)
    fail: set[str] = field(default_factory=set)
    slow: set[str] = field(default_factory=set)
    slow_s: float = 2.0
    drop_fraction: float = 0.5  # how much of a drop_once body is sent before hanging up

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def served_bytes(self, path: str) -> bytes:
        data = self.files[path]
        if path in self.corrupt and data:
            return bytes([data[0] ^ 0xFF]) + data[1:]  # same length, so only a hash check notices
        return data

    def tree(self) -> list[dict]:
        entries: list[dict] = []
        folders = sorted({p.rsplit("/", 1)[0] for p in self.files if "/" in p})
        for folder in folders:
            entries.append(
                {"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest()}
            )
        for path, data in sorted(self.files.items()):
            entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
            if self.is_lfs(path):
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            entries.append(entry)
        return entries


class FakeHub:
    """Two threaded HTTP servers on 127.0.0.1 (hub + CDN origin), random ports, with a request log."""

    def __init__(self, tokens: tuple[str, ...] = ("hf_good_token",)) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.tokens = set(tokens)
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._dropped: set[tuple[str, str]] = set()

    # ---- content -------------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: dict[str, bytes], **kwargs) -> FakeRepo:
        commit = hashlib.sha1(repo_id.encode() + b"".join(sorted(files.values()))).hexdigest()
        repo = FakeRepo(repo_id, dict(files), commit, **kwargs)
        self.repos[repo_id] = repo
        return repo

    def add_folder(self, repo_id: str, folder: Path, prefix: str = "", **kwargs) -> FakeRepo:
        files = {
            prefix + p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        files.setdefault("README.md", b"# test model\n")
        return self.add_repo(repo_id, files, **kwargs)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeHub:
        for name in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, name))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    # ---- log -----------------------------------------------------------------------------------

    def record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)

    def requests(
        self, method: str | None = None, contains: str = "", server: str | None = None
    ) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method)
                and contains in r.path
                and (server is None or r.server == server)
            ]

    def first_drop(self, repo: FakeRepo, path: str) -> bool:
        """True the first time ``path`` is fully requested, when it should be cut off."""
        with self._lock:
            key = (repo.repo_id, path)
            if path in repo.drop_once and key not in self._dropped:
                self._dropped.add(key)
                return True
            return False


def _handler(hub: FakeHub, server_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # keep pytest output clean
            pass

        # ---- plumbing ----------------------------------------------------------------------

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def _repo(self, repo_id: str) -> FakeRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
            return repo

        def _authorised(self, repo: FakeRepo) -> bool:
            if not repo.gated:
                return True
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip()
            if token in hub.tokens:
                return True
            status = 403 if token else 401
            message = f"Access to model {repo.repo_id} is restricted and you are not in the authorized list."
            self._error(status, "GatedRepo", message)
            return False

        def _revision_ok(self, repo: FakeRepo, revision: str) -> bool:
            if revision in ("main", repo.commit):
                return True
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return False

        # ---- routes ------------------------------------------------------------------------

        def do_HEAD(self) -> None:
            self._route()

        def do_GET(self) -> None:
            self._route()

        def _route(self) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            headers = {k.lower(): v for k, v in self.headers.items()}  # clients differ in case
            hub.record(Request(server_name, self.command, self.path, headers))
            parts = path.strip("/").split("/")
            if server_name == "cdn":
                return self._cdn(parts)
            if path == "/api/agent-harnesses":  # huggingface_hub 2.x looks up AI-agent env vars once a day
                return self._json(200, {"standardEnvVars": [], "harnesses": {}})
            if parts[:2] == ["api", "models"] and len(parts) >= 6:
                repo_id = "/".join(parts[2:4])
                repo = self._repo(repo_id)
                if repo is None or not self._revision_ok(repo, parts[5]):
                    return None
                if parts[4] == "revision":
                    siblings = [{"rfilename": p} for p in sorted(repo.files)]
                    return self._json(200, {"id": repo.repo_id, "sha": repo.commit, "siblings": siblings})
                if parts[4] == "tree":
                    query = parse_qs(url.query)
                    prefix = "/".join(parts[6:])
                    entries = [e for e in repo.tree() if e["path"].startswith(prefix)]
                    if query.get("recursive", ["false"])[0].lower() != "true":
                        entries = [e for e in entries if "/" not in e["path"][len(prefix) :].strip("/")]
                    return self._json(200, entries)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = self._repo("/".join(parts[:2]))
                if repo is None or not self._revision_ok(repo, parts[3]):
                    return None
                return self._resolve(repo, "/".join(parts[4:]))
            return self._error(404, "EntryNotFound", f"no route for {path}")

        def _resolve(self, repo: FakeRepo, path: str) -> None:
            commit = {"X-Repo-Commit": repo.commit}
            if path not in repo.files:
                return self._json(
                    404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", **commit}
                )
            if not self._authorised(repo):
                return None
            data = repo.files[path]
            if repo.is_lfs(path):
                sha = hashlib.sha256(data).hexdigest()
                headers = {
                    **commit,
                    "Location": f"{hub.cdn}/cdn/{repo.repo_id}/{sha}",
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{git_blob_sha1(data)}"',
                }
                return self._send(302, b"", headers)
            return self._content(repo, path, {**commit, "ETag": f'"{git_blob_sha1(data)}"'})

        def _cdn(self, parts: list[str]) -> None:
            if parts[0] != "cdn" or len(parts) != 4:
                return self._send(404)
            repo = hub.repos.get("/".join(parts[1:3]))
            found = [
                p
                for p, d in (repo.files.items() if repo else [])
                if hashlib.sha256(d).hexdigest() == parts[3]
            ]
            if repo is None or not found:
                return self._send(404)
            return self._content(repo, found[0], {"ETag": f'"{parts[3]}"'})

        def _content(self, repo: FakeRepo, path: str, headers: dict[str, str]) -> None:
            """The file's bytes (or a fault), honouring ``Range: bytes=N-``."""
            if path in repo.fail and self.command == "GET":
                return self._error(500, "InternalError", "storage backend unavailable")
            data = repo.served_bytes(path)
            start = 0
            status = 200
            headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes=") and self.command == "GET":
                start = int(ranged.removeprefix("bytes=").split("-")[0])
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            headers["Content-Length"] = str(len(body))
            if self.command == "GET" and start == 0 and hub.first_drop(repo, path):
                # send half the body, then hang up: the client sees a short read and must resume
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body[: int(len(body) * repo.drop_fraction)])
                self.wfile.flush()
                self.close_connection = True
                return None
            if self.command == "GET" and path in repo.slow:
                return self._send_slowly(status, body, headers, repo.slow_s)
            return self._send(status, body, headers)

        def _send_slowly(self, status: int, body: bytes, headers: dict[str, str], seconds: float) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            pieces = 20
            step = max(1, -(-len(body) // pieces))
            try:
                for start in range(0, len(body), step):
                    self.wfile.write(body[start : start + step])
                    self.wfile.flush()
                    time.sleep(seconds / pieces)
            except (BrokenPipeError, ConnectionResetError):  # the client went away mid-download
                self.close_connection = True

    return Handler


def hub_env(endpoint: str, home: Path) -> dict[str, str]:
    """The environment of a user whose HF_ENDPOINT is ``endpoint``, with a fresh cache under ``home``."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {
        **clean,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home / "hf-home"),
        "HF_HUB_CACHE": str(home / "hf-cache"),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
