"""Single-use upload tokens: a client-side upload's token (v1) or JWT (v2) is accepted once.

Without Redis (`[cluster] redis_url` unset), a token is spent as it always was: a row of
`upload_tokens` inserted in a transaction of its own before the upload is stored; the primary
key refuses a second one, on any worker or node sharing the database.

With Redis, a token is claimed with `SET key 1 NX EXAT expire+skew` before the upload's work
begins: a reuse on any node is refused at once, as before, without a database transaction.
Redis is never the only record, though. What it holds can be lost (a restart without
persistence, a failover to a replica behind it), and while it cannot be reached a node cannot
ask it what it holds. A scheme that spent tokens in Redis alone and fell back to the table only
during an outage would accept twice a token spent in Redis before the outage and presented again
during it (the table never heard of it), or spent before a restart that emptied Redis. No rule
about time windows can tell those tokens apart from fresh ones: a v1 token carries no issue
time, only its expiry.

So the durable record stays the table, written where it costs no transaction of its own: the
row goes into the upload's own transaction (`Upload.also`, as `INSERT ... ON CONFLICT DO
NOTHING`; no row inserted means the token was spent, and the upload is rolled back with its
bytes). Redis answers "taken" early and for every node; the table decides when Redis cannot
(down, emptied, or a race it lost). Hence:

- Redis up: reuse refused by Redis, before any work (the same 403 as ever).
- Redis down: `claim` skips it (for RETRY_SECONDS after a failure, so an outage adds no wait to
  each upload) and uploads go on; a reuse is refused by the table when its upload commits.
- Redis back, empty or not: a token spent at any time before is still in the table.
- Two uploads racing with one token while Redis is down: the table's key lets one commit.

A token claimed in Redis whose upload then fails (a bad field, an empty file) stays spent
there until it expires, as a token spent in the table before a failed upload always was.
Rows past their expiry are deleted by the library's sweep (`MediaLibrary.sweep`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelport.errors import ApiForbidden
from pixelport.state.db import Database
from pixelport.state.models import UploadToken
from pixelport.state.upsert import insert_ignore

log = logging.getLogger("pixelport.uploads")
SKEW = 30  # clocks of the signer and of this server may differ this much
MAX_TOKEN = 255  # the table's key length
PREFIX = "pixelport:upload-token:"
RETRY_SECONDS = 1.0  # after a Redis failure, claims skip it this long (the table decides)
USED = "This upload token has been used already."
Record = Callable[[Session], None]  # run in the upload's transaction


class SpentTokens:
    """The spent tokens of one account: in its database, with Redis in front when set."""

    def __init__(self, db: Database, account: str = "") -> None:
        """`account`: the account's name ("" the default), which keeps accounts' tokens
        apart in the Redis every account shares."""
        self.db = db
        self.account = account
        self.redis: Any = None  # a redis.asyncio client (`[cluster] redis_url`), set by the app
        self.skip_until = 0.0  # monotonic time before which Redis is not asked
        self.refused_early = 0  # reuses Redis refused (for tests)

    async def claim(self, token: str, expire: int) -> Record | None:
        """Refuse a token used already (403); else what records it as spent inside the
        upload's transaction, or None when it is recorded already (no Redis: its own
        transaction, as ever). `expire`: the Unix time the token stops being valid."""
        if len(token) > MAX_TOKEN:
            raise ApiForbidden(f"The token is longer than {MAX_TOKEN} characters.")
        until = datetime.fromtimestamp(expire + SKEW, UTC)
        if self.redis is None:
            await self._spend_alone(token, until)
            return None
        if await self._claimed_before(token, expire + SKEW):
            self.refused_early += 1
            raise ApiForbidden(USED)
        return lambda session: _record(session, token, until)

    async def _spend_alone(self, token: str, until: datetime) -> None:
        try:
            spent = UploadToken(token=token, expires_at=until)
            await self.db.transaction(lambda session: session.add(spent))
        except IntegrityError:
            raise ApiForbidden(USED) from None

    async def _claimed_before(self, token: str, until: int) -> bool:
        """Whether Redis says another upload claimed `token` (False when it cannot say)."""
        if time.monotonic() < self.skip_until:
            return False
        try:
            won = await self.redis.set(f"{PREFIX}{self.account}:{token}", b"1", nx=True,
                                       exat=until)
        except Exception as exc:  # down, timed out: the table decides at commit
            if not self.skip_until:
                log.warning("upload tokens: Redis unreachable (%s); the database alone "
                            "refuses reused tokens until it answers", exc)
            self.skip_until = time.monotonic() + RETRY_SECONDS
            return False
        if self.skip_until:
            log.info("upload tokens: Redis answers again")
            self.skip_until = 0.0
        return not won


def _record(session: Session, token: str, until: datetime) -> None:
    """The token's row, unless one is there: then the upload is refused (and rolled back)."""
    statement = insert_ignore(session, UploadToken, {"token": token, "expires_at": until},
                              "token")
    result = cast(CursorResult[Any], session.execute(statement))
    if result.rowcount == 0:
        raise ApiForbidden(USED)


def redis_client(url: str) -> Any:
    """A Redis client for token claims: short timeouts, since the table can always decide."""
    from redis.asyncio import Redis

    return Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
