"""pixelport.state.direct stores rows exactly as SQLAlchemy Core does (on SQLite, where it
bypasses Core), and finds what a column holds."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

from pixelport.state import direct
from pixelport.state.models import Base, File, FileTag, FileVersion, Folder


def _file(file_id: str, path: str, moment: datetime) -> dict[str, Any]:
    return {
        "id": file_id, "path": path, "folder": "/a/", "name": path.rsplit("/", 1)[1],
        "version_id": file_id, "version_number": 1, "storage_key": f"k/{file_id}",
        "file_type": "image", "mime": "image/jpeg", "format": "jpg", "size": 123_456,
        "width": 640, "height": None, "has_alpha": True, "is_private": False,
        "is_published": True, "custom_coordinates": "1,2,3,4",
        "custom_metadata": {"price": 9.5, "name": "é ☃", "list": [1, "x", None]},
        "embedded_metadata": {}, "description": None, "created_at": moment,
        "updated_at": moment + timedelta(milliseconds=5), "duration": 6.04,
        "video_codec": "h264", "audio_codec": None, "bit_rate": 1_433_633}


def _stored(database: Path, table: str, key: str, value: str) -> tuple[Any, ...]:
    with sqlite3.connect(database) as raw:
        row = raw.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,)).fetchone()
    assert row is not None
    return tuple(row)


def test_rows_are_stored_as_core_stores_them(tmp_path: Path) -> None:
    database = tmp_path / "direct.db"
    engine = create_engine(f"sqlite:///{database}")
    Base.metadata.create_all(engine)
    # An aware non-UTC time and a naive one: both go through the column type's processor.
    moments = [datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=2))),
               datetime(2026, 1, 2, 1, 4, 5, 678000)]
    for index, moment in enumerate(moments):
        with Session(engine) as session, session.begin():
            connection = session.connection()
            core, mine = _file(f"core{index}", f"/a/core{index}.jpg", moment), \
                _file(f"mine{index}", f"/a/mine{index}.jpg", moment)
            connection.execute(insert(File), core)
            direct.Insert(File.__table__).run(connection, [mine])
            tags = [{"tag": "t1", "ai": False, "position": 0}, {"tag": "t2", "ai": True,
                                                                  "position": 1}]
            connection.execute(insert(FileTag), [{"file_id": core["id"], **t} for t in tags])
            direct.Insert(FileTag.__table__).run(connection,
                                                 [{"file_id": mine["id"], **t} for t in tags])
            for row in (core, mine):
                version = {"id": row["id"], "file_id": row["id"], "number": 1,
                           "storage_key": row["storage_key"],
                           "snapshot": {"tags": ["t1"], "size": 1}, "created_at": moment}
                if row is core:
                    connection.execute(insert(FileVersion), version)
                else:
                    direct.Insert(FileVersion.__table__).run(connection, [version])
        for table, key in (("files", "id"), ("file_versions", "id")):
            core_row = _stored(database, table, key, f"core{index}")
            mine_row = _stored(database, table, key, f"mine{index}")
            differs = [i for i, (a, b) in enumerate(zip(core_row, mine_row, strict=True))
                       if a != b and "core" not in str(a)]
            assert differs == [], (table, core_row, mine_row)
        with sqlite3.connect(database) as raw:
            stored_tags = [raw.execute("SELECT tag, ai, position FROM file_tags WHERE "
                                       "file_id = ? ORDER BY position", (f"{who}{index}",))
                           .fetchall() for who in ("core", "mine")]
        assert stored_tags[0] == stored_tags[1] == [("t1", 0, 0), ("t2", 1, 1)]
    # And the ORM reads them back alike.
    with Session(engine) as session:
        core_file, mine_file = session.get(File, "core0"), session.get(File, "mine0")
        assert core_file is not None and mine_file is not None
        assert mine_file.created_at == core_file.created_at == moments[0].astimezone(UTC)
        assert mine_file.custom_metadata == core_file.custom_metadata
        assert [t.tag for t in mine_file.tags] == ["t1", "t2"]


def test_present_finds_what_a_column_holds(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'present.db'}")
    Base.metadata.create_all(engine)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        for path in ("/a/", "/a/b/", "/☃/"):
            session.add(Folder(path=path, parent="/", name=path, custom_metadata={},
                               created_at=moment, updated_at=moment))
    with Session(engine) as session, session.begin():
        present = direct.Present(Folder.path)
        connection = session.connection()
        assert present.run(connection, ["/a/", "/x/", "/☃/", "/a/b/"]) == {"/a/", "/a/b/",
                                                                          "/☃/"}
        assert present.run(connection, ["/nothing/"]) == set()
        assert present.run(connection, []) == set()
        # A value that looks like SQL is only a value.
        assert present.run(connection, ["') OR 1=1 --"]) == set()
