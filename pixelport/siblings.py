"""The other worker processes of this server: what must reach every one of them.

A purge is answered by the worker that received it, but every worker holds cached results
of its own (the memory tier, hot answers, recent originals, the disk entries it indexes).
The purge is told to the others, each over a Unix socket in the run folder, and answered
only once all of them have carried it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from pixelport.place import Place

log = logging.getLogger("pixelport.siblings")
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
TIMEOUT = 10.0  # a worker being restarted is back within seconds
MAX_MESSAGE = 64 * 1024


class Unreachable(RuntimeError):
    """Another worker did not answer in time."""


class Beyond(Protocol):
    """What carries a message to the other nodes (pixelport/cluster/bus.py)."""

    def publish(self, message: dict[str, Any]) -> None:
        """Send `message` to every other node, in the background."""


class Siblings:
    """This worker's link to the others (nothing to do when it is alone)."""

    def __init__(self, place: Place) -> None:
        self.place = place
        self.server: asyncio.AbstractServer | None = None
        self.handler: Handler | None = None
        self.beyond: Beyond | None = None  # the other nodes, when there is a cluster

    async def broadcast(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """`tell` this node's other workers (their replies), then every other node's, in the
        background: a purge or a change that every cache and every worker must see."""
        replies = await self.tell(message)
        if self.beyond is not None:
            self.beyond.publish(message)
        return replies

    def path(self, index: int) -> Path:
        """The socket of worker `index`."""
        assert self.place.run_dir is not None
        return self.place.run_dir / f"worker-{index}.sock"

    async def start(self, handler: Handler) -> None:
        """Take messages from the others, each answered by `handler`."""
        if self.place.alone:
            return
        self.handler = handler
        path = self.path(self.place.index)
        path.unlink(missing_ok=True)  # left by this worker's previous run
        self.server = await asyncio.start_unix_server(self._serve, path=str(path),
                                                      limit=MAX_MESSAGE)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            message = json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT))
            assert self.handler is not None
            reply = await self.handler(message)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("message from another worker failed: %s", exc)
        finally:
            writer.close()

    async def tell(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Send `message` to every other worker; their replies. Unreachable if one fails."""
        others = [i for i in range(self.place.count) if i != self.place.index]
        return list(await asyncio.gather(*(self._tell(i, message) for i in others)))

    async def _tell(self, index: int, message: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.path(index)),
                                                                    limit=MAX_MESSAGE)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if loop.time() > deadline:  # not started yet, or being restarted
                    raise Unreachable(f"worker {index} is not answering") from None
                await asyncio.sleep(0.1)
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - loop.time()))
            reply: dict[str, Any] = json.loads(line)
            return reply
        except (OSError, TimeoutError, ValueError) as exc:
            raise Unreachable(f"worker {index} did not answer: {exc}") from None
        finally:
            writer.close()

    async def close(self) -> None:
        """Stop taking messages."""
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(OSError):
                await self.server.wait_closed()
            self.path(self.place.index).unlink(missing_ok=True)
