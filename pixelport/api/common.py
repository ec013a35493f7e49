"""What every management route shares: JSON bodies in, ImageKit's JSON errors out."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pixelport.errors import ApiDatabaseUnavailable, ApiError, PixelportError
from pixelport.library.records import Urls
from pixelport.state.db import is_unreachable

log = logging.getLogger("pixelport.api")
MAX_JSON = 1024 * 1024
HELP = "For support kindly contact your pixelport administrator."
S = TypeVar("S")
Handler = Callable[[S, Request], Awaitable[Response]]
UrlsFor = Callable[[str | None, str], Urls]  # (Host header, scheme) → the endpoint's URLs


def answer(status: int, body: Any) -> Response:
    """A JSON answer; ImageKit's SDKs want `{}` rather than an empty 200/201 body."""
    if status == 204:
        return Response(status_code=204, headers={"cache-control": "no-store"})
    return JSONResponse({} if body is None else body, status_code=status,
                        headers={"cache-control": "no-store"})


def failure(error: PixelportError) -> Response:
    """An error as ImageKit's JSON `{"message", "help"}` (plus what the error adds)."""
    extra = error.extra if isinstance(error, ApiError) else {}
    return JSONResponse({"message": error.message, "help": HELP, **extra},
                        status_code=error.status,
                        headers={"cache-control": "no-store", "ik-error": error.header})


def route(handler: Handler[S]) -> Handler[S]:
    """A route method that answers any pixelport error as JSON, and anything unexpected as a
    logged 500."""
    async def wrapped(self: S, request: Request) -> Response:
        try:
            return await handler(self, request)
        except PixelportError as exc:
            return failure(exc)
        except Exception as exc:
            if is_unreachable(exc):
                log.warning("API request %s %s: the database did not answer: %s",
                            request.method, request.url.path, exc)
                return failure(ApiDatabaseUnavailable("The database did not answer; try "
                                                      "again shortly."))
            request_id = secrets.token_hex(8)
            log.exception("API request %s (%s %s) failed", request_id, request.method,
                          request.url.path)
            return JSONResponse({"message": f"Internal error; request id {request_id}",
                                 "help": HELP}, status_code=500)
    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (400 when it is missing, too large or not an object)."""
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON:
            raise ApiError("The request body is larger than 1 MB.")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        raise ApiError("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("The request body must be a JSON object.")
    return body


def text(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    """A string field of a JSON body (400 when required and missing, or not a string)."""
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(f"Missing {key} parameter.")
        return None
    if not isinstance(value, str):
        raise ApiError(f"{key} must be a string.")
    return value


def string_list(body: dict[str, Any], key: str) -> list[str]:
    """A list of strings (400 otherwise)."""
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(f"{key} must be an array of strings.")
    return value


def flag(body: dict[str, Any], key: str, default: bool) -> bool:
    """A boolean field; "true"/"false" strings accepted."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError(f"{key} must be true or false.")


def urls(request: Request, urls_for: UrlsFor) -> Urls:
    """The delivery URLs as the client that asked sees them."""
    # The scope's scheme (what ProxyHeadersMiddleware set) without building request.url.
    return urls_for(request.headers.get("host"), str(request.scope.get("scheme", "http")))
