"""Authentication of the management and upload API (`/v1/...`, `/api/v1/...`).

ImageKit's scheme: HTTP Basic with the private key as the user name; the password is ignored
(the SDKs send `do_not_set`). Every configured key is compared, each in constant time, so the
time taken tells nothing about which key matched or how much of a guess was right. The key
also says whose request it is: each account (the default one, and every sub-account) has its
own keys and its own routes, and a request reaches only the routes of the account its key is
one of.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence

from pixelport.asgi import Receive, Scope, Send, send_bytes

ApiHandler = Callable[[Scope, Receive, Send], Awaitable[None]]
PREFIXES = ("/v1/", "/api/v1/", "/api/v2/")
# Routes that authenticate themselves (uploads may be signed on the client instead), or need
# no key.
SELF_AUTHENTICATED = ("/api/v1/files/upload", "/api/v2/files/upload",
                      # and what anyone may read: the API's description (api/openapi.py)
                      "/v1/openapi.json")
UNAUTHORIZED = ("Your request could not be authenticated: send the private API key as the "
                "HTTP Basic user name.")


def is_api_path(path: str) -> bool:
    """Whether `path` belongs to the API rather than to delivery."""
    return path in ("/v1", "/api/v1", "/api/v2") or path.startswith(PREFIXES)


def basic_user(authorization: bytes | None) -> bytes | None:
    """The user name of an `Authorization: Basic ...` header, or None when there is none."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(b" ")
    if scheme.lower() != b"basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded.partition(b":")[0]


def is_authorized(headers: Iterable[tuple[bytes, bytes]], keys: Sequence[str]) -> bool:
    """Whether the request's Basic user name is one of the private keys."""
    given = _given(headers)
    return given is not None and _matches(given, keys)


def _given(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The SHA-256 of the request's Basic user name (None without one)."""
    authorization = next((value for name, value in headers if name.lower() == b"authorization"),
                         None)
    user = basic_user(authorization)
    # Digests first: compare_digest on equal-length inputs leaks neither content nor length.
    return None if user is None else hashlib.sha256(user).digest()


def _matches(given: bytes, keys: Sequence[str]) -> bool:
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, hashlib.sha256(key.encode("utf-8")).digest())
    return matched


async def send_json(send: Send, status: int, body: dict[str, str],
                    extra: dict[str, str] | None = None) -> None:
    """A JSON answer in ImageKit's error shape (`{"message": ...}`)."""
    headers = {"content-type": "application/json; charset=utf-8", "cache-control": "no-store",
               **(extra or {})}
    await send_bytes(send, status, headers, json.dumps(body).encode())


class ApiRoutes:
    """One account's keys and API routes."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        self.routes: list[tuple[str, ApiHandler]] = []

    def route(self, prefix: str, handler: ApiHandler) -> None:
        """Serve paths starting with `prefix` (e.g. `/api/v1/files/upload`) with `handler`."""
        self.routes.append((prefix, handler))
        self.routes.sort(key=lambda item: -len(item[0]))

    def find(self, path: str) -> ApiHandler | None:
        """The handler of the longest prefix of `path`."""
        return next((h for prefix, h in self.routes
                     if path == prefix or path.startswith(prefix.rstrip("/") + "/")), None)


class ApiGate:
    """Authenticates every API request, then hands it to the route with the longest prefix
    among its account's."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.default = ApiRoutes(keys)
        self.accounts: dict[str, ApiRoutes] = {}  # sub-accounts', by name

    @property
    def keys(self) -> tuple[str, ...]:
        """The default account's keys."""
        return self.default.keys

    def route(self, prefix: str, handler: ApiHandler) -> None:
        """Serve the default account's paths starting with `prefix` with `handler`."""
        self.default.route(prefix, handler)

    def whose(self, headers: Iterable[tuple[bytes, bytes]]) -> ApiRoutes | None:
        """The routes of the account the request's key is one of (None: no key matched).
        Every account's keys are compared, whichever matches."""
        given = _given(headers)
        if given is None:
            return None
        found = None
        for routes in (self.default, *self.accounts.values()):
            if _matches(given, routes.keys):
                found = routes
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point for one API request."""
        path = scope["path"]
        keyed = self.whose(scope["headers"])
        # An upload route checks its own credentials (a client-side signature or a JWT may
        # stand in for the key, and names the account); everything else needs a key first.
        public = path.rstrip("/") in SELF_AUTHENTICATED
        handler = (keyed or self.default).find(path)
        if handler is None and public:
            handler = self.default.find(path)
        if keyed is None and (handler is None or not public):
            await send_json(send, 401, {"message": UNAUTHORIZED},
                            {"www-authenticate": 'Basic realm="pixelport"'})
            return
        if handler is None:
            await send_json(send, 404, {"message": "No API route matches this path."})
            return
        await handler(scope, receive, send)
