"""SQLite's write thread: every writing transaction of a process, run on one thread and one
connection, and those that queued up meanwhile committed together (group commit).

SQLite takes one writer at a time anyway. Run one after another, each transaction paid its own
`BEGIN IMMEDIATE`, commit, session and wake-up, and wrote the pages it shared with the next
(an index's last leaf, the folder's rows) to the WAL again. Transactions that are already
waiting when the thread picks up work run in one SQLite transaction instead, in queue order,
each in a Session of its own and seeing the ones before it as if they had committed first.
If any of them raises, the whole group is rolled back and each is run again alone, so one
failing change never takes another with it and each caller sees exactly its own outcome.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from pixelport.threadnames import namer

MAX_GROUP = 32  # transactions committed together at most


@dataclass
class _Job:
    """A transaction (`work`, after `first`) or, without `work`, a call run alone."""

    future: Future[Any]
    work: Callable[[Session], Any] | None = None
    first: Callable[[], object] | None = None
    call: Callable[[], Any] | None = None
    result: Any = field(default=None)


class WriteThread:
    """One thread, one connection; `transaction` and `call` return concurrent futures."""

    def __init__(self, engine: Engine, name: str = "pixelport-db-write") -> None:
        self.engine = engine
        self.connection: Connection | None = None
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def transaction(self, work: Callable[[Session], Any],
                    first: Callable[[], object] | None = None) -> Future[Any]:
        """Run `first` (blocking work before the transaction), then `work` in a transaction
        committed when it returns; the future holds what `work` returned or raised."""
        job = _Job(Future(), work=work, first=first)
        self.jobs.put(job)
        return job.future

    def call(self, function: Callable[[], Any]) -> Future[Any]:
        """Run `function` on the thread, alone (migrations, closing)."""
        job = _Job(Future(), call=function)
        self.jobs.put(job)
        return job.future

    def connect(self) -> Connection:
        """The thread's connection (the engine's one pooled connection, kept: a checkout per
        transaction cost a tenth of an upload's). Only on the thread."""
        if self.connection is None or self.connection.closed:
            self.connection = self.engine.connect()
        return self.connection

    def close(self) -> None:
        """Close the connection and end the thread once the queued jobs are done."""
        done = self.call(self._disconnect)
        self.jobs.put(None)
        done.result()

    def _disconnect(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        self.engine.dispose()

    def _run(self) -> None:
        namer("pp-db-write")()
        pending: list[_Job | None] = []  # taken off the queue, not for a group
        while True:
            job = pending.pop(0) if pending else self.jobs.get()
            if job is None:
                return
            if job.work is None:
                self._alone(job)
                continue
            group = [job]
            while len(group) < MAX_GROUP:
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None or more.work is None:
                    pending.append(more)
                    break
                group.append(more)
            self._group(group)

    def _alone(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        assert job.call is not None
        try:
            job.future.set_result(job.call())
        except BaseException as exc:  # the caller gets it
            job.future.set_exception(exc)

    def _group(self, group: list[_Job]) -> None:
        ready: list[_Job] = []
        for job in group:
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                if job.first is not None:
                    job.first()
                    job.first = None  # done once, whatever happens to the transaction
                ready.append(job)
            except BaseException as exc:
                job.future.set_exception(exc)
        if len(ready) == 1:
            self._settle(ready[0])
            return
        if not ready:
            return
        try:
            self._transaction(ready)
        except Exception:
            for job in ready:  # one at a time: only the failing one fails
                self._settle(job)
            return
        for job in ready:
            job.future.set_result(job.result)

    def _settle(self, job: _Job) -> None:
        """Run one transaction and give its caller the outcome."""
        try:
            self._transaction([job])
        except BaseException as exc:
            job.future.set_exception(exc)
        else:
            job.future.set_result(job.result)

    def _transaction(self, jobs: list[_Job]) -> None:
        """One SQLite transaction for `jobs`, each in a Session of its own (its objects are
        its caller's alone) joined to it: a Session's commit only flushes here, and the
        connection commits once, after the last."""
        connection = self.connect()
        with connection.begin():  # BEGIN IMMEDIATE (the engine's listener)
            for job in jobs:
                assert job.work is not None
                with Session(connection, expire_on_commit=False,
                             join_transaction_mode="rollback_only") as session:
                    job.result = job.work(session)
                    session.commit()
