"""Every failure pixelport answers with: HTTP status, ik-error code, public message.

The message is safe to show a client (it names paths and origins, never credentials);
details for operators go to the log.
"""

from __future__ import annotations


class PixelportError(Exception):
    """Base of all answered failures."""

    status: int = 404
    code: str = "UNIDENTIFIED"
    body: str = "Not Found"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def header(self) -> str:
        """The ik-error header value: `CODE - message`."""
        # Header values must be latin-1 and single-line; keep the message printable.
        safe = self.message.replace("\r", " ").replace("\n", " ")
        safe = safe.encode("latin-1", "replace").decode("latin-1")
        return f"{self.code} - {safe}"


class NotFound(PixelportError):
    """The file is in no source."""

    code = "ENOENT"
    final = False  # True: the origin chain stops here instead of asking the next origin


class VersionNotFound(NotFound):
    """`ik-obj-version` names no version of a media library file. Final: the library has the
    file, so no later origin is asked for it (one would ignore the version)."""

    final = True


class AccessDenied(PixelportError):
    """An origin refused our credentials (401/403, bad key, bad signature at the provider)."""

    code = "EACCES"


class OriginUnreachable(PixelportError):
    """An origin refused the connection or its host could not be resolved."""

    code = "ECONNREFUSED"


class AddressRefused(OriginUnreachable):
    """The address guard refused the address a web origin's host resolves to (the request's
    choice of host, not the origin's health: never counted by a circuit breaker)."""


class OriginFailed(PixelportError):
    """An origin timed out, answered 5xx, or failed in a way we cannot classify."""

    code = "UNIDENTIFIED"


class LimitExceeded(PixelportError):
    """A configured limit (pixels, bytes, frames, output size) was exceeded."""

    status = 400
    code = "ELIMIT"
    body = "Limit exceeded"


class InvalidRequest(PixelportError):
    """A bad transformation string, parameter, path or named transformation."""

    status = 400
    code = "EINVALID"
    body = "Bad Request"


class UnsupportedFormat(PixelportError):
    """The file is not an image or video we can decode, or cannot be written as asked."""

    status = 400
    code = "EFORMAT"
    body = "Unsupported format"


class BadSignature(PixelportError):
    """A missing, bad or expired URL signature."""

    status = 401
    code = "ESIGNATURE"
    body = "Unauthorized"


class Busy(PixelportError):
    """The processing queue is full; the client should retry later."""

    status = 503
    code = "EBUSY"
    body = "Service Unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unexpected(OriginFailed):
    """An unexpected exception, answered without details (they are logged with the request id)."""

    status = 500
    body = "Internal Server Error"


class ApiError(PixelportError):
    """A management or upload API failure, answered as JSON `{"message", "help"}`; `extra`
    adds fields some answers carry (`missingFileIds`)."""

    status = 400
    code = "EINVALID"
    body = "Bad Request"

    def __init__(self, message: str, extra: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.extra = extra or {}


class ApiNotFound(ApiError):
    """The file, version, folder or job named does not exist."""

    status = 404
    code = "ENOENT"
    body = "Not Found"


class ApiConflict(ApiError):
    """The name or path asked for is taken."""

    status = 409
    code = "ECONFLICT"
    body = "Conflict"


class ApiForbidden(ApiError):
    """Authenticated, but not allowed: a bad upload signature, a reused or expired token."""

    status = 403
    code = "EACCES"
    body = "Forbidden"


class UploadTooLarge(ApiError):
    """An upload past `[limits] max_upload_bytes`, refused while it streams in."""

    status = 413
    code = "ELIMIT"
    body = "Payload Too Large"


class ApiUnauthorized(ApiError):
    """No credentials the API accepts."""

    status = 401
    code = "ESIGNATURE"
    body = "Unauthorized"


class ApiUnavailable(ApiError):
    """The change was made, but not every worker could be told to drop its cached results."""

    status = 503
    code = "EBUSY"
    body = "Service Unavailable"


class DatabaseUnavailable(Busy):
    """The media library's database did not answer: delivery tries the endpoint's origins
    behind the library, and answers this (503, Retry-After) if none has the file."""

    def __init__(self, message: str = "The media library's database did not answer; "
                                      "try again shortly") -> None:
        super().__init__(message, retry_after=5)


class ApiDatabaseUnavailable(ApiError):
    """The database did not answer an API request (nothing was changed, or the change was
    rolled back with it)."""

    status = 503
    code = "EBUSY"
    body = "Service Unavailable"
