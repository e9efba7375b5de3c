"""Optional authentication on every route but ``/health``, ``/ready`` (load balancer and systemd
probes carry no credentials) and the browser page (``/``, ``/ui/*``, which hold no data and ask
for credentials themselves): A1111-style HTTP Basic
(``--api-auth user:pass[,user2:pass2]``) and/or a bearer token. Either one that is configured
is accepted."""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from pi_axera_sd.config import Settings
from pi_axera_sd.server.core.failures import ApiError
from pi_axera_sd.server.core.image_links import LINK_PREFIX
from pi_axera_sd.server.dialects.problems import error_response

OPEN_PATHS = frozenset({"/health", "/ready", "/"})
# Image links for OpenAI clients: fetched by browsers without credentials; the random name is the key.
# The page's static assets hold no data; the page asks for credentials itself.
OPEN_PREFIXES = (LINK_PREFIX, "/ui/")
REALM = "pi-axera-sd"


@dataclass(frozen=True)
class Credentials:
    users: tuple[tuple[bytes, bytes], ...] = ()
    token: bytes | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        users = []
        if settings.api_auth is not None:
            for entry in settings.api_auth.get_secret_value().split(","):
                if not entry.strip():
                    continue
                user, sep, password = entry.strip().partition(":")
                if not sep or not user:
                    raise ValueError("API_AUTH must be 'user:password' pairs separated by commas")
                users.append((user.encode(), password.encode()))
        token = settings.api_token.get_secret_value().encode() if settings.api_token else None
        return cls(tuple(users), token or None)

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.token is not None

    def accepts(self, authorization: str) -> bool:
        scheme, _, value = authorization.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self.token is not None:
            return secrets.compare_digest(value.encode(), self.token)
        if scheme == "basic" and self.users:
            try:
                user, _, password = base64.b64decode(value, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            # Compare against every entry so the time taken does not reveal which user exists.
            matches = [
                secrets.compare_digest(user, u) & secrets.compare_digest(password, p) for u, p in self.users
            ]
            return any(matches)
        return False

    def challenge(self) -> str:
        schemes = []
        if self.users:
            schemes.append(f'Basic realm="{REALM}", charset="UTF-8"')
        if self.token is not None:
            schemes.append(f'Bearer realm="{REALM}"')
        return ", ".join(schemes)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not self.credentials.enabled
            or path in OPEN_PATHS
            or path.startswith(OPEN_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        if self.credentials.accepts(Headers(scope=scope).get("authorization", "")):
            await self.app(scope, receive, send)
            return
        err = ApiError(
            401,
            "authentication required",
            kind="Unauthorized",
            headers={"WWW-Authenticate": self.credentials.challenge()},
        )
        await error_response(scope["path"], err)(scope, receive, send)
