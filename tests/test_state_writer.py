"""pixelport.state.writer: transactions that queue up together commit together, each caller
gets its own outcome, and a failing one takes no other with it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from pixelport.state.db import _sqlite_sync_engine
from pixelport.state.models import Base, Folder
from pixelport.state.writer import WriteThread

MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


class Boom(Exception):
    """A change that fails."""


@pytest.fixture
def writer(tmp_path: Path) -> Any:
    engine = _sqlite_sync_engine(f"sqlite:///{tmp_path / 'w.db'}")
    Base.metadata.create_all(engine)
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    thread = WriteThread(engine)
    thread.commits = commits  # type: ignore[attr-defined]
    yield thread
    thread.close()


def add_folder(path: str, fail: bool = False) -> Any:
    def work(session: Session) -> Folder:
        folder = Folder(path=path, parent="/", name=path.strip("/"), custom_metadata={},
                        created_at=MOMENT, updated_at=MOMENT)
        session.add(folder)
        session.flush()
        # What the transactions before it in its group wrote is visible, as if committed.
        folder.custom_metadata = {"seen": session.scalar(select(func.count(Folder.id)))}
        if fail:
            raise Boom(path)
        return folder
    return work


def held(writer: WriteThread) -> threading.Event:
    """Keep the thread busy until the event is set, so what is submitted meanwhile queues."""
    release = threading.Event()
    writer.call(release.wait)
    return release


def count(writer: WriteThread) -> int:
    def read(session: Session) -> int:
        return int(session.scalar(select(func.count(Folder.id))) or 0)
    return int(writer.transaction(read).result())


def test_queued_transactions_commit_once_in_order(writer: WriteThread) -> None:
    release = held(writer)
    futures = [writer.transaction(add_folder(f"/f{i}/")) for i in range(10)]
    release.set()
    folders = [f.result(timeout=30) for f in futures]
    assert [f.path for f in folders] == [f"/f{i}/" for i in range(10)]
    assert [f.custom_metadata["seen"] for f in folders] == list(range(1, 11))
    assert len({id(f) for f in folders}) == 10  # each caller its own object
    assert writer.commits == [1]  # type: ignore[attr-defined]
    assert count(writer) == 10


def test_a_failing_transaction_takes_no_other_with_it(writer: WriteThread) -> None:
    release = held(writer)
    futures = [writer.transaction(add_folder(f"/g{i}/", fail=i == 3)) for i in range(6)]
    release.set()
    with pytest.raises(Boom, match="/g3/"):
        futures[3].result(timeout=30)
    kept = [futures[i].result(timeout=30) for i in (0, 1, 2, 4, 5)]
    assert [f.path for f in kept] == ["/g0/", "/g1/", "/g2/", "/g4/", "/g5/"]
    # Run again one at a time after the group's rollback: each saw only those before it.
    assert [f.custom_metadata["seen"] for f in kept] == [1, 2, 3, 4, 5]
    assert count(writer) == 5


def test_first_runs_once_even_when_the_group_is_run_again(writer: WriteThread) -> None:
    calls: list[int] = []
    release = held(writer)
    futures = [writer.transaction(add_folder(f"/h{i}/", fail=i == 1),
                                  first=lambda i=i: calls.append(i)) for i in range(3)]
    release.set()
    for i, future in enumerate(futures):
        if i == 1:
            with pytest.raises(Boom):
                future.result(timeout=30)
        else:
            future.result(timeout=30)
    assert sorted(calls) == [0, 1, 2]


def test_a_failing_first_fails_its_transaction_only(writer: WriteThread) -> None:
    def broken() -> None:
        raise OSError("disk full")

    release = held(writer)
    failing = writer.transaction(add_folder("/i0/"), first=broken)
    fine = writer.transaction(add_folder("/i1/"))
    release.set()
    with pytest.raises(OSError, match="disk full"):
        failing.result(timeout=30)
    assert fine.result(timeout=30).path == "/i1/"
    assert count(writer) == 1


def test_a_cancelled_transaction_is_not_run(writer: WriteThread) -> None:
    release = held(writer)
    cancelled = writer.transaction(add_folder("/j0/"))
    kept = writer.transaction(add_folder("/j1/"))
    assert cancelled.cancel()
    release.set()
    assert kept.result(timeout=30).path == "/j1/"
    assert count(writer) == 1
