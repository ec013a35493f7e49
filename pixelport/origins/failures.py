"""One place that turns what a storage provider or the network said into the error contract.

Messages name the origin, the path and the provider's error code; never a URL (it may carry a
SAS token) nor a credential.
"""

from __future__ import annotations

import aiohttp

from pixelport.errors import (
    AccessDenied,
    NotFound,
    OriginFailed,
    OriginUnreachable,
    PixelportError,
)

# A missing key is "not found" so the chain moves on; a missing bucket or container is a
# misconfigured origin, and reporting it as such beats hiding it behind a later source's miss.
_MISSING_OBJECT = frozenset({"NoSuchKey", "BlobNotFound", "ResourceNotFound", "NotFound",
                             "NoSuchVersion", "404"})
_MISSING_STORE = frozenset({"NoSuchBucket", "ContainerNotFound"})
_DENIED = frozenset({
    "AccessDenied", "AllAccessDisabled", "SignatureDoesNotMatch", "InvalidAccessKeyId",
    "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "InvalidSecurity",
    "AuthorizationFailure", "AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch", "AuthorizationProtocolMismatch",
    "AuthorizationSourceIPMismatch", "AuthenticationFailed", "InsufficientAccountPermissions",
    "AccountIsDisabled", "UserProjectAccountProblem", "401", "403",
})


def provider_error(who: str, path: str, status: int, code: str | None) -> PixelportError:
    """The error for a provider's failure answer (HTTP status plus its error code, if any)."""
    named = f" ({code})" if code and code != str(status) else ""
    if code in _MISSING_STORE:
        return OriginFailed(f"{who}: the bucket or container does not exist{named}")
    if code in _MISSING_OBJECT or (code not in _DENIED and status in (404, 410)):
        return NotFound(f"No file was found on {who} at the specified path {path!r}")
    if code in _DENIED or status in (401, 403):
        return AccessDenied(f"{who} denied access (HTTP {status}{named}) to {path!r}")
    return OriginFailed(f"{who} answered HTTP {status}{named} for {path!r}")


def transport_error(who: str, host: str, exc: BaseException) -> PixelportError:
    """The error for an aiohttp failure before or while a response arrived."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return OriginFailed(f"{who}: timed out talking to {host}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return OriginUnreachable(f"{who}: could not resolve {host}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return OriginUnreachable(f"{who}: {host} refused the connection")
    return OriginFailed(f"{who}: request failed ({type(exc).__name__})")

