"""Signed delivery URLs, compatible with ImageKit's SDKs (`ik-s`, `ik-t`).

The string to sign is the URL as the client sent it (path still percent-encoded, including a
`tr:` segment and the whole query) with the endpoint prefix and the following `/` removed and
`ik-s`/`ik-t` taken off the query, followed by the expiry (`ik-t`, or 9999999999 without one).
`ik-s` is the lowercase hex HMAC-SHA1 of that string with the private key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote_plus, urlsplit

from pixelport.errors import BadSignature

if TYPE_CHECKING:
    from pixelport.config import EndpointConfig, SecurityConfig
    from pixelport.delivery.request import DeliveryRequest

log = logging.getLogger("pixelport.security")

SIGNATURE = "ik-s"
EXPIRY = "ik-t"
NO_EXPIRY = "9999999999"  # what the SDKs sign when a URL never expires (and leave ik-t out)
MAX_EXPIRY_DIGITS = len(NO_EXPIRY)

# The SDKs percent-encode paths keeping RFC 3986 pchars; `%` stays so existing escapes survive.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class SignatureParams:
    """A raw query string split into its signature parameters and everything else."""

    query: str  # the raw query without ik-s/ik-t, every other byte as received
    signature: str | None
    expiry: str | None


def split_query(raw_query: str) -> SignatureParams:
    """Take `ik-s` and `ik-t` out of a raw query string, keeping the rest byte for byte.

    Keys are compared percent-decoded, so `ik%2Ds` counts as `ik-s` both here and for anyone
    reading the decoded query later: a signature parameter can never hide in the signed part.
    A parameter given twice is refused, since it is ambiguous which one was signed.
    """
    kept: list[str] = []
    found: dict[str, str] = {}
    for part in raw_query.split("&") if raw_query else []:
        key, _, value = part.partition("=")
        name = unquote_plus(key, errors="replace")
        if name in (SIGNATURE, EXPIRY):
            if name in found:
                raise BadSignature(f"The URL carries {name} more than once")
            found[name] = unquote_plus(value, errors="replace")
        else:
            kept.append(part)
    return SignatureParams("&".join(kept), found.get(SIGNATURE), found.get(EXPIRY))


def sign(key: str, message: bytes) -> str:
    """The lowercase hex HMAC-SHA1 of `message` with `key`."""
    return hmac.new(key.encode("utf-8"), message, hashlib.sha1).hexdigest()


def string_to_sign(signed_target: str, expiry: str | None) -> bytes:
    """The signed bytes: the target after the endpoint prefix, then the expiry.

    `signed_target` holds the request's raw bytes decoded as latin-1 (how the delivery layer
    keeps raw paths), so encoding it back as latin-1 gives exactly the bytes the client sent.
    """
    return (signed_target + (expiry if expiry is not None else NO_EXPIRY)).encode("latin-1")


def signature_matches(keys: Sequence[str], message: bytes, given: str) -> bool:
    """Whether `given` is the signature of `message` under any key, in constant time.

    Every key is tried even after a match, so the time taken does not tell which key (or
    whether any key) matched.
    """
    candidate = given.strip().lower().encode("utf-8", "replace")
    matched = False
    for key in keys:
        expected = sign(key, message).encode("ascii")
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def required_for(endpoint: EndpointConfig, security: SecurityConfig) -> bool:
    """Whether requests to `endpoint` must be signed (the endpoint's setting wins)."""
    if endpoint.require_signed_urls is not None:
        return endpoint.require_signed_urls
    return security.require_signed_urls


def check_request(request: DeliveryRequest, security: SecurityConfig,
                  now: float | None = None) -> None:
    """Verify a delivery request's signature; raise BadSignature (401) when it does not pass.

    A URL that carries `ik-s` or `ik-t` is always verified; an unsigned URL passes unless the
    endpoint or the whole server requires signatures.
    """
    if request.signature is None and request.expiry is None:
        if required_for(request.endpoint.config, security):
            raise BadSignature("This URL must be signed (ik-s)")
        return
    check_signature(request.signed_target, request.signature, request.expiry,
                    security.keys, now)


def check_signature(signed_target: str, signature: str | None, expiry: str | None,
                    keys: Sequence[str], now: float | None = None) -> None:
    """Verify `ik-s`/`ik-t` for a raw target (endpoint prefix already removed)."""
    if signature is None:
        raise BadSignature("The URL has ik-t but no ik-s")
    # The signed string is the target and the expiry with nothing between them: were ik-t free
    # in length, a URL signed for `doc-2024?ik-t=T` would also pass as `doc-202?ik-t=4T`, another
    # file valid for a thousand years. ImageKit's expiry is Unix seconds: at most 10 digits.
    if expiry is not None and not (expiry.isascii() and expiry.isdigit()
                                   and 1 <= len(expiry) <= MAX_EXPIRY_DIGITS):
        raise BadSignature("ik-t must be a Unix time in seconds (at most 10 digits)")
    if not keys:
        log.warning("a signed URL arrived but no [security] private_key is configured")
    # The message never names the expected signature: that would let anyone sign any URL.
    if not signature_matches(keys, string_to_sign(signed_target, expiry), signature):
        raise BadSignature("The URL signature does not match")
    if expiry is not None and int(expiry) < (time.time() if now is None else now):
        raise BadSignature("The URL has expired")


def canonical_url(url: str) -> str:
    """`url` percent-encoded the way the SDKs build URLs (spaces, unicode; escapes kept)."""
    parts = urlsplit(url)
    path = quote(_LONE_PERCENT.sub("%25", parts.path), safe=_PATH_SAFE)
    query = quote(_LONE_PERCENT.sub("%25", parts.query), safe=_QUERY_SAFE)
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{query}" if query else "")


def endpoint_prefix(url: str, endpoints: Sequence[EndpointConfig]) -> str:
    """The prefix (`scheme://host/identifier/`) that `url`'s signature does not cover.

    A custom domain binds its endpoint without an identifier in the path; otherwise the
    longest identifier that is a prefix of the path wins, as in delivery.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    base = f"{parts.scheme}://{parts.netloc}/"
    host = (parts.hostname or "").rstrip(".")
    if any(host in endpoint.domains for endpoint in endpoints):
        return base
    segments = parts.path.lstrip("/").split("/")
    prefixes = sorted((e.identifier.split("/") if e.identifier else [] for e in endpoints),
                      key=len, reverse=True)
    for prefix in prefixes:
        if segments[: len(prefix)] == prefix:
            return base + "".join(f"{segment}/" for segment in prefix)
    raise ValueError(f"no endpoint serves {url!r}")


def sign_url(url: str, prefix: str, key: str, expires_at: int | None = None) -> str:
    """`url` with `ik-t` (when it expires) and `ik-s` appended, as ImageKit's SDKs do it."""
    url = canonical_url(url)
    head, _, raw_query = url.partition("?")
    query = split_query(raw_query).query  # re-signing replaces an old signature
    unsigned = head + (f"?{query}" if query else "")
    if not unsigned.startswith(prefix):
        raise ValueError(f"{url!r} does not start with the endpoint prefix {prefix!r}")
    expiry = str(expires_at) if expires_at is not None else None
    signature = sign(key, string_to_sign(unsigned[len(prefix):], expiry))
    separator = "&" if query else "?"
    if expiry is not None:
        return f"{unsigned}{separator}{EXPIRY}={expiry}&{SIGNATURE}={signature}"
    return f"{unsigned}{separator}{SIGNATURE}={signature}"
