"""A time limit on each request, from arrival until the response starts.

Past the limit the request is cancelled and answered `504` with `ik-error: UNIDENTIFIED - ...`
(`no-store`). Once the response has started (a large file streaming to a slow client) the
limit no longer applies: the bytes are flowing, and the origin's read timeout still guards
against a stalled origin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pixelport.asgi import Message, Receive, Scope, Send, send_bytes

log = logging.getLogger("pixelport.security")

AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
STATUS = 504
CODE = "UNIDENTIFIED"


def with_deadline(app: AsgiApp, seconds: float) -> AsgiApp:
    """Wrap an ASGI app so each HTTP request must start its response within `seconds`."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        deadline = asyncio.timeout(seconds)

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                deadline.reschedule(None)
            await send(message)

        try:
            async with deadline:
                await app(scope, receive, tracking_send)
        except TimeoutError:
            if started or not deadline.expired():
                raise  # not ours, or too late to answer
            log.warning("%s %s took longer than %g s; answered %d", scope.get("method"),
                        scope.get("path"), seconds, STATUS)
            message = f"The request did not complete within {seconds:g} seconds"
            await send_bytes(send, STATUS, {"content-type": "text/plain; charset=utf-8",
                                            "ik-error": f"{CODE} - {message}",
                                            "cache-control": "no-store"}, b"Gateway Timeout")

    return guarded
