"""pixelport.library.search: ImageKit's searchQuery as a SQL clause over `File`.

The parser's errors and their positions; every field and operator run against real SQLite
and PostgreSQL databases (`database_url`); properties: no input raises anything but
SearchError, and every query made of valid parts parses and runs.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from pixelport.library.search import MAX_DEPTH, MAX_LENGTH, SearchError, where
from pixelport.state.models import Base, File, FileTag

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
DIALECTS = (SQLiteDialect(), PGDialect())  # compiling needs no driver
FIELDS = {"brand": "Text", "notes": "Textarea", "rating": "Number", "launch": "Date",
          "onSale": "Boolean", "tier": "SingleSelect", "colors": "MultiSelect"}


def at(text: str) -> datetime:
    """An aware UTC datetime from ISO text."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- Errors and their positions -------------------------------------------------------------

ERRORS = [
    ("name =", 6, "expected a value after '='"),
    ('name = "a" AND', 14, "expected a field name or '(' after 'AND'"),
    ('(name = "a"', 11, "expected ')'"),
    ('name = "abc', 7, "unterminated string"),
    ('nme = "a"', 0, "unknown field 'nme'"),
    ('name = "a" AND wdth > 3', 15, "unknown field 'wdth'"),
    ('width : "x"', 6, "':' does not apply to 'width'"),
    ("private > 3", 8, "'>' does not apply to 'private'"),
    ("private = 3", 10, "expected true or false"),
    ('width > "abc"', 8, "expected a number"),
    ("name = foo", 7, "expected a quoted string"),
    ('createdAt > "7x"', 12, "expected a date"),
    ('createdAt > "2024-02-30"', 12, "not a date we can use"),
    ('createdAt > "99999y"', 12, "not a date we can use"),
    ('size > "1pb"', 7, "expected a size"),
    ('tags IN "a"', 8, "expected a list like"),
    ('tags IN ["a" "b"]', 13, "expected ',' or ']' after '\"a\"', found '\"b\"'"),
    ('name = "a" & x', 11, "unexpected character '&', expected AND, OR or the end"),
    ('name = "a" name = "b"', 11, "expected AND, OR or the end of the query after '\"a\"', "
                                  "found 'name'"),
    ("name = )", 7, "expected a value after '=', found ')'"),
    ("tags EXISTS 3", 12, "after 'EXISTS', found '3'"),
    ('videoDuration > "30sec"', 0, "'videoDuration' is not supported yet"),
    ('"embeddedMetadata.Keywords" IN ["a"]', 0, "is not supported yet"),
    ('"customMetadata.nope" = 1', 0, "unknown custom metadata field 'nope'"),
    ('"customMetadata.a b" = 1', 0, "invalid custom metadata field name"),
    ('"customMetadata.rating" : "4"', 24, "':' does not apply"),
    ('"customMetadata.rating" > "high"', 26, "expected a number"),
    ('"customMetadata.onSale" HAS "x"', 24, "'HAS' does not apply"),
    ('type = "dir"', 7, "type is one of file, file-version, folder"),
    ("name EXISTS", 5, "'EXISTS' does not apply to 'name'"),
    ("", 0, "the query is empty"),
    ("   ", 0, "the query is empty"),
    ('name = "a\0"', 9, "invalid character"),
    ('name = "\ud800"', 8, "invalid character"),
]


@pytest.mark.parametrize(("query", "position", "detail"), ERRORS)
def test_errors_name_the_position(query: str, position: int, detail: str) -> None:
    with pytest.raises(SearchError) as caught:
        where(query, now=NOW, fields=FIELDS)
    error = caught.value
    assert error.position == position, error.message
    assert detail in error.message
    assert error.message.startswith(f"Invalid searchQuery at position {position}: ")
    assert str(error) == error.message
    assert isinstance(error, ValueError)


def test_length_and_nesting_limits() -> None:
    deep_enough = "(" * MAX_DEPTH + 'id = "a"' + ")" * MAX_DEPTH
    where(deep_enough)
    with pytest.raises(SearchError) as caught:
        where("(" + deep_enough + ")")
    assert caught.value.position == MAX_DEPTH and "nest more than 32" in caught.value.message
    # Parentheses inside strings are text, not nesting.
    where('name = "' + "(" * 100 + '"')
    longest = 'name = "' + "x" * (MAX_LENGTH - 9) + '"'
    assert len(longest) == MAX_LENGTH
    where(longest)
    with pytest.raises(SearchError) as caught:
        where(longest + " ")
    assert caught.value.position == MAX_LENGTH


def test_values_are_bound_never_written_into_the_sql() -> None:
    hostile = "x'); DROP TABLE files; --"
    clause = where(f'name = "{hostile}" OR tags HAS "{hostile}" OR path : "/{hostile}" OR '
                   f'"customMetadata.brand" : "{hostile}"', fields=FIELDS)
    for dialect in DIALECTS:
        compiled = select(File.id).where(clause).compile(dialect=dialect)
        assert "DROP" not in compiled.string
        assert any(hostile in str(v) for v in compiled.params.values())


def _sql(query: str) -> tuple[str, list[Any]]:
    compiled = select(File.id).where(where(query, now=NOW)).compile(dialect=SQLiteDialect())
    return compiled.string, list(compiled.params.values())


@pytest.mark.parametrize(("spelling", "canonical"), [
    # Keywords in any case, quoted field names, single quotes, free whitespace.
    ("\"tags\" in ['a'] or Name has \"x\" and private = TRUE",
     'tags IN ["a"] OR name HAS "x" AND private = true'),
    ('name NOT = "x"', 'name != "x"'),
    ('(width>=5)AND(size<"1mb")', 'width >= 5 AND size < "1mb"'),
    # Bare dates, relative times and sizes, as ImageKit's own examples write them.
    ("createdAt < 2020-01-01 AND createdAt > 2d AND size < 1mb",
     'createdAt < "2020-01-01" AND createdAt > "2d" AND size < "1mb"'),
    ('size <= "1.5MB"', "size <= 1572864"),
    ('createdAt > "1y"', 'createdAt > "2023-06-15T12:00:00Z"'),
    ('createdAt > "3m"', 'createdAt > "2024-03-15T12:00:00Z"'),
])
def test_spellings_of_the_same_query(spelling: str, canonical: str) -> None:
    assert _sql(spelling) == _sql(canonical)


def test_string_escapes() -> None:
    _, params = _sql('name = "say \\"hi\\" \\\\ C:\\d" OR name = \'it\\\'s\'')
    assert params == ['say "hi" \\ C:\\d', "it's"]


# --- The database -----------------------------------------------------------------------

def _file(ident: str, folder: str, name: str, *, created: str, size: int, mime: str,
          fmt: str, width: int | None = None, height: int | None = None,
          tags: tuple[tuple[str, bool], ...] = (), updated: str | None = None,
          **columns: Any) -> File:
    return File(id=ident, path=folder + name, folder=folder, name=name, version_id=ident,
                storage_key=ident, file_type="image" if mime.startswith("image/") else "non-image",
                mime=mime, format=fmt, size=size, width=width, height=height,
                created_at=at(created), updated_at=at(updated or created),
                tags=[FileTag(tag=t, ai=ai, position=i) for i, (t, ai) in enumerate(tags)],
                **columns)


def library() -> list[File]:
    """Ten files whose fields make each query below select a different set."""
    return [
        _file("f01", "/products/", "red-dress.jpg", created="2024-06-14T12:00:00",
              size=500_000, mime="image/jpeg", fmt="jpg", width=1200, height=800,
              tags=(("summer", False), ("dress", True)), description="A Red summer dress",
              custom_metadata={"brand": "Nike", "rating": 4.5, "onSale": True,
                               "launch": "2024-06-10T00:00:00Z", "colors": ["red", "blue"],
                               "tier": "gold"}),
        _file("f02", "/products/shoes/", "Red-Shoe.png", created="2024-06-01T00:00:00",
              updated="2024-06-15T11:00:00", size=2_000_000, mime="image/png", fmt="png",
              width=400, height=400, has_alpha=True, is_private=True,
              tags=(("sale", False), ("shoe", False)),
              custom_metadata={"brand": "Adidas", "rating": 3, "onSale": False,
                               "colors": ["green"], "tier": "silver"}),
        _file("f03", "/products-old/", "red-dress-old.jpg", created="2023-12-31T23:00:00",
              size=1024, mime="image/jpeg", fmt="jpg", width=100, height=100,
              tags=(("summer-sale", False),)),
        _file("f04", "/docs/", "100%cotton.pdf", created="2022-01-01T00:00:00",
              size=5 * 1024 * 1024, mime="application/pdf", fmt="pdf", is_published=False,
              description='Cotton "SPEC" sheet',
              custom_metadata={"notes": "Ünïcode: 50% OFF today"}),
        _file("f05", "/docs/", "100xcotton.pdf", created="2024-06-15T11:30:00", size=300,
              mime="application/pdf", fmt="pdf", tags=(("Spec", True),),
              custom_coordinates="10,10,20,20"),
        # A stale string under a field that is now a Number: never matched, never a failure.
        _file("f06", "/", "a_b.txt", created="2024-03-15T12:00:00", size=10,
              mime="text/plain", fmt="txt", custom_metadata={"rating": "high"}),
        _file("f07", "/", "axb.txt", created="2024-05-15T12:00:00", size=20,
              mime="text/plain", fmt="txt", custom_metadata={"launch": "2024-01-15"}),
        _file("f08", "/archive/2023/", "photo.webp", created="2023-06-15T12:00:00",
              size=1024 * 1024, mime="image/webp", fmt="webp", width=3000, height=2000,
              tags=(("summer", True),),
              custom_metadata={"launch": "2023-06-15T10:00:00+02:00", "brand": "nike"}),
        _file("f09", "/archive/", "logo.svg", created="2024-06-08T12:00:00", size=4096,
              mime="image/svg+xml", fmt="svg", width=64, height=64, has_alpha=True,
              custom_metadata={"colors": "red", "tier": 3}),
        _file("f10", "/products/", "Blue Dress.jpg", created="2024-06-15T10:00:00",
              size=2048, mime="image/jpeg", fmt="jpg", width=800, height=1200,
              description="", tags=(("Summer", False),)),
    ]


ALL = {f"f{n:02d}" for n in range(1, 11)}


def but(*ids: str) -> set[str]:
    """Every file except these."""
    return ALL - set(ids)


# (query, the ids it selects); run with FIELDS, NOW fixed at 2024-06-15T12:00Z.
CASES: list[tuple[str, set[str]]] = [
    # name: exact and prefix case-sensitive, HAS any case, LIKE characters taken literally
    ('name = "red-dress.jpg"', {"f01"}),
    ('name : "red-dress"', {"f01", "f03"}),
    ('name : "Red"', {"f02"}),
    ('name HAS "RED"', {"f01", "f02", "f03"}),
    ('name HAS "100%"', {"f04"}),
    ('name : "a_b"', {"f06"}),
    ('name HAS "_"', {"f06"}),
    ('name IN ["a_b.txt", "axb.txt"]', {"f06", "f07"}),
    ('name NOT IN ["a_b.txt", "axb.txt"]', but("f06", "f07")),
    ('name != "a_b.txt"', but("f06")),
    ('name NOT = "a_b.txt"', but("f06")),
    ("name = 'Blue Dress.jpg'", {"f10"}),
    ('name IN []', set()),
    ('name NOT IN []', ALL),
    # tags (both kinds) and AITags
    ('tags = "summer"', {"f01", "f08"}),
    ('tags IN ["sale", "shoe", "dress"]', {"f01", "f02"}),
    ('tags NOT IN ["summer"]', but("f01", "f08")),
    ('tags HAS "SUMMER"', {"f01", "f03", "f08", "f10"}),
    ('tags : "summer"', {"f01", "f03", "f08"}),
    ("tags EXISTS", {"f01", "f02", "f03", "f05", "f08", "f10"}),
    ("tags NOT EXISTS", {"f04", "f06", "f07", "f09"}),
    ('AITags = "summer"', {"f08"}),
    ("AITags EXISTS", {"f01", "f05", "f08"}),
    ('AITags IN ["dress", "Spec", "sale"]', {"f01", "f05"}),
    # type, id, fileType, format, mime
    ('type = "file"', ALL),
    ('type = "folder"', set()),
    ('type IN ["file-version", "folder"]', set()),
    ('type NOT IN ["file-version"]', ALL),
    ('type != "file"', set()),
    ('id = "f03"', {"f03"}),
    ('id IN ["f03", "f09", "nope"]', {"f03", "f09"}),
    ('fileType = "non-image"', {"f04", "f05", "f06", "f07"}),
    ('format = "JPG"', {"f01", "f03", "f10"}),
    ('format IN ["png", "svg"]', {"f02", "f09"}),
    ('mime : "image/"', {"f01", "f02", "f03", "f08", "f09", "f10"}),
    ('mime = "application/pdf"', {"f04", "f05"}),
    # dates: relative (h, d, w, m = months, y), ISO dates and date-times with zones
    ('createdAt > "7d"', {"f01", "f05", "f10"}),
    ('createdAt >= "7d"', {"f01", "f05", "f09", "f10"}),
    ('createdAt > "1h"', {"f05"}),
    ('createdAt > "1w"', {"f01", "f05", "f10"}),
    ('createdAt > "1m"', {"f01", "f02", "f05", "f09", "f10"}),
    ('createdAt >= "1M"', {"f01", "f02", "f05", "f07", "f09", "f10"}),
    ('createdAt < "1y"', {"f04"}),
    ('createdAt <= "1y"', {"f04", "f08"}),
    ('createdAt > "90min"', {"f05"}),
    ("createdAt < 2024-01-01", {"f03", "f04", "f08"}),
    ('createdAt < "2024-01-01T00:00:00+01:00"', {"f04", "f08"}),
    ('createdAt = "2023-12-31T23:00:00Z"', {"f03"}),
    ('createdAt IN ["2023-12-31T23:00:00Z", "2022-01-01"]', {"f03", "f04"}),
    ('updatedAt > "2h"', {"f02", "f05"}),
    # width, height, size (binary units)
    ("width > 1000", {"f01", "f08"}),
    ("width >= 1200", {"f01", "f08"}),
    ("width < 100.5", {"f03", "f09"}),
    ("width = 400", {"f02"}),
    ("width = 400.5", set()),
    ("width != 400", but("f02")),
    ("width EXISTS", {"f01", "f02", "f03", "f08", "f09", "f10"}),
    ("width NOT EXISTS", {"f04", "f05", "f06", "f07"}),
    ("height IN [800, 2000]", {"f01", "f08"}),
    # Beyond what INTEGER (width) and BIGINT (size) hold: decided without binding them.
    ("width > 1e30", set()),
    ("width < 1e30", {"f01", "f02", "f03", "f08", "f09", "f10"}),
    ("width > 3000000000 OR height IN [-3000000000, 800]", {"f01"}),
    ("width != 5000000000", ALL),
    ("size > 1e19 OR size = 1e19", set()),
    ('size < "1mb"', {"f01", "f03", "f05", "f06", "f07", "f09", "f10"}),
    ('size = "1MB"', {"f08"}),
    ('size <= "1kb"', {"f03", "f05", "f06", "f07"}),
    ('size > "1.5mb"', {"f02", "f04"}),
    ("size >= 1024 AND size <= 4096", {"f03", "f09", "f10"}),
    ('size IN ["1kb", "2kb", 300]', {"f03", "f05", "f10"}),
    # booleans
    ("private = true", {"f02"}),
    ("private = false", but("f02")),
    ("private != true", but("f02")),
    ("published = false", {"f04"}),
    ("transparency = true", {"f02", "f09"}),
    # path: = a folder or a file; : a folder and its subfolders (not /products-old/)
    ('path : "/products"', {"f01", "f02", "f10"}),
    ('path : "products/"', {"f01", "f02", "f10"}),
    ('path = "/products"', {"f01", "f10"}),
    ('path = "/products/red-dress.jpg"', {"f01"}),
    ('path : "/"', ALL),
    ('path = "/"', {"f06", "f07"}),
    ('path NOT IN ["/products/"]', but("f01", "f10")),
    ('path HAS "ARCHIVE"', {"f08", "f09"}),
    # description (NULL, empty, set) and customCoordinates
    ('description HAS "summer"', {"f01"}),
    ('description HAS "\\"spec\\""', {"f04"}),
    ("description EXISTS", {"f01", "f04"}),
    ("description NOT EXISTS", but("f01", "f04")),
    ('description != "A Red summer dress"', but("f01")),
    ("customCoordinates EXISTS", {"f05"}),
    # custom metadata, by the field's schema type
    ('"customMetadata.brand" = "Nike"', {"f01"}),
    ('customMetadata.brand HAS "nike"', {"f01", "f08"}),
    ('"customMetadata.brand" : "Adi"', {"f02"}),
    ('"customMetadata.brand" IN ["Nike", "Adidas"]', {"f01", "f02"}),
    ('"customMetadata.brand" != "Nike"', but("f01")),
    ('"customMetadata.brand" NOT EXISTS', but("f01", "f02", "f08")),
    ('"customMetadata.notes" HAS "50% off"', {"f04"}),
    ('"customMetadata.notes" HAS "0%"', {"f04"}),
    ('"customMetadata.rating" > 4', {"f01"}),
    ('"customMetadata.rating" <= 3', {"f02"}),
    ('"customMetadata.rating" IN [3, 4.5]', {"f01", "f02"}),
    ('"customMetadata.rating" EXISTS', {"f01", "f02", "f06"}),
    ('"customMetadata.launch" > "7d"', {"f01"}),
    ('"customMetadata.launch" < "2024-01-16"', {"f07", "f08"}),
    ('"customMetadata.launch" = "2023-06-15T08:00:00Z"', {"f08"}),
    ('"customMetadata.launch" = "2024-01-15"', {"f07"}),
    ('"customMetadata.onSale" = true', {"f01"}),
    ('"customMetadata.onSale" = false', {"f02"}),
    ('"customMetadata.onSale" != true', but("f01")),
    ('"customMetadata.tier" = "gold"', {"f01"}),
    ('"customMetadata.tier" IN ["silver", 3]', {"f02", "f09"}),
    ('"customMetadata.colors" IN ["red"]', {"f01", "f09"}),
    ('"customMetadata.colors" = "green"', {"f02"}),
    ('"customMetadata.colors" NOT IN ["red", "green"]', but("f01", "f02", "f09")),
    ('"customMetadata.colors" EXISTS', {"f01", "f02", "f09"}),
    # AND binds tighter than OR; parentheses; keywords in any case
    ('name : "red" OR name : "Red" AND private = false', {"f01", "f03"}),
    ('(name : "red" OR name : "Red") AND private = true', {"f02"}),
    ('((tags = "sale")) or format = "svg" and transparency = true', {"f02", "f09"}),
    ('((tags = "sale") or format = "svg") and transparency = true', {"f02", "f09"}),
    ('(size < "1mb" AND width > 500) OR (tags IN ["summer-sale", "banner"])',
     {"f01", "f03", "f10"}),
    ('createdAt > "7d" AND name: "red-dress"', {"f01"}),
]

# Without a schema (fields=None) the value's type decides how the metadata compares.
UNTYPED_CASES: list[tuple[str, set[str]]] = [
    ('"customMetadata.brand" = "Nike"', {"f01"}),
    ('"customMetadata.rating" > 4', {"f01"}),
    ('"customMetadata.rating" = 3', {"f02"}),
    ('"customMetadata.rating" = "high"', {"f06"}),
    ('"customMetadata.onSale" = false', {"f02"}),
    ('"customMetadata.launch" > "7d"', {"f01"}),
    ('"customMetadata.tier" IN ["gold", 3]', {"f01", "f09"}),
    ('"customMetadata.brand" HAS "NIK"', {"f01", "f08"}),
]


def async_url(url: str) -> str:
    """The database_url with the asyncio driver."""
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    return url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)


async def _selected(url: str, cases: list[tuple[str, dict[str, str] | None]]) -> list[set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(engine) as session, session.begin():
            session.add_all(library())
        found: list[set[str]] = []
        async with AsyncSession(engine) as session:
            for query, fields in cases:
                clause = where(query, now=NOW, fields=fields)
                found.append(set((await session.scalars(select(File.id).where(clause))).all()))
            # The longest OR chain a query can hold still runs (SQLite's depth limit is 1000).
            chain = "OR ".join(['id="f01"'] * ((MAX_LENGTH + 3) // 11))
            assert len(chain) <= MAX_LENGTH
            found.append(set((await session.scalars(select(File.id).where(where(chain)))).all()))
        return found
    finally:
        await engine.dispose()


@pytest.mark.integration
def test_queries_select_the_expected_files(database_url: str) -> None:
    cases: list[tuple[str, dict[str, str] | None]] = [(q, FIELDS) for q, _ in CASES]
    cases += [(q, None) for q, _ in UNTYPED_CASES]
    expected = [ids for _, ids in CASES] + [ids for _, ids in UNTYPED_CASES] + [{"f01"}]
    found = asyncio.run(_selected(async_url(database_url), cases))
    wrong = [f"{query!r} (fields={'yes' if fields else 'no'}): got {sorted(got)}, "
             f"expected {sorted(want)}"
             for (query, fields), got, want in zip([*cases, ("<OR chain>", None)], found,
                                                   expected, strict=True) if got != want]
    assert not wrong, "\n".join(wrong)


# --- Query plans on SQLite ------------------------------------------------------------------

def _plan(engine: Engine, clause: ColumnElement[bool]) -> str:
    statement = select(File.id).where(clause)
    with engine.connect() as conn:
        compiled = statement.compile(dialect=conn.dialect,
                                     compile_kwargs={"render_postcompile": True})
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, params).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_sqlite_plans_use_the_indexes(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    # An empty library, never analysed: the planner's defaults, as a new install has.
    engine = create_engine(f"sqlite:///{tmp_path}/plans.db")
    Base.metadata.create_all(engine)
    path_plan = _plan(engine, where('path : "/a"'))
    tags_plan = _plan(engine, where('tags IN ["a", "b"]'))
    name_plan = _plan(engine, where('name : "red" AND size > "1mb"'))
    engine.dispose()
    with capsys.disabled():
        print(f"\npath : \"/a\"\n{path_plan}\ntags IN [\"a\", \"b\"]\n{tags_plan}\n"
              f"name : \"red\" AND size > \"1mb\"\n{name_plan}")
    # The folder range reads the (folder, created_at) index; tags come from the tag index.
    assert "ix_files_folder" in path_plan
    assert "ix_file_tags_tag" in tags_plan


# --- Properties -----------------------------------------------------------------------------

@functools.cache
def _memory_engine() -> Engine:
    """An empty in-memory SQLite library, to run generated queries against."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    return engine


def _compiles(clause: ColumnElement[bool]) -> None:
    for dialect in DIALECTS:
        select(File.id).where(clause).compile(dialect=dialect)


QUERYISH = st.text(alphabet=st.sampled_from(list(
    'abcdeinorstxyzANDORNOTINHASEXISTS "\'\\()[],:=<>!.-+0123456789 \tmkbdhwy%_')), max_size=120)


@pytest.mark.property
@given(st.one_of(st.text(max_size=200), QUERYISH))
@example("(" * 40)
@example('name = "' + "\\" * 3)
@example('createdAt > "999999y"')
@example("width > 1e9999")
@example("size > 99999999999999999999tb")
@example('"customMetadata.x" > 1e400')
@example("tags IN [,]")
def test_any_text_gives_a_clause_or_a_search_error(query: str) -> None:
    try:
        clause = where(query, now=NOW)
    except SearchError as error:
        assert 0 <= error.position <= len(query)
        return
    _compiles(clause)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


TEXT = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]),
               max_size=12).map(_quoted)
NUMBER = st.one_of(st.integers(-(2**70), 2**70).map(str),
                   st.floats(allow_nan=False, allow_infinity=False).map(repr))
DATE = st.one_of(
    st.tuples(st.integers(0, 2000), st.sampled_from(["h", "d", "w", "m", "y", "min", "D"]))
    .map(lambda p: f'"{p[0]}{p[1]}"'),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                 timezones=st.sampled_from([UTC, None]))
    .map(lambda d: _quoted(d.isoformat())),
    st.dates().map(lambda d: d.isoformat()))
SIZE = st.one_of(st.integers(0, 2**40).map(str), st.tuples(
    st.integers(0, 4096), st.sampled_from(["b", "kb", "MB", "gb", "tb", ""])
).map(lambda p: f'"{p[0]}{p[1]}"'))
BOOLEAN = st.sampled_from(["true", "false", "TRUE", '"false"'])
SCALAR = st.one_of(TEXT, st.integers(-1000, 1000).map(str), BOOLEAN)


def _list(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(values, max_size=4).map(lambda v: "[" + ", ".join(v) + "]")


def _condition(fields: list[str], ops: list[str], value: st.SearchStrategy[str] | None,
               ) -> st.SearchStrategy[str]:
    operand = st.just("") if value is None else value
    return st.tuples(st.sampled_from(fields), st.sampled_from(ops), operand).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}".rstrip())


CONDITION = st.one_of(
    _condition(["name", "mime", "description", '"customMetadata.brand"'],
               ["=", "!=", "NOT =", ":", "HAS", "has"], TEXT),
    _condition(["name", "id", "format", "fileType", "tags", "AITags", "path",
                '"customMetadata.brand"', '"customMetadata.tier"', '"customMetadata.colors"'],
               ["IN", "NOT IN", "not  in"], _list(TEXT)),
    _condition(["tags", "AITags", "path"], ["=", "!=", ":", "HAS"], TEXT),
    _condition(["tags", "AITags", "description", "customCoordinates", "width",
                "customMetadata.rating", '"customMetadata.colors"'],
               ["EXISTS", "NOT EXISTS", "exists"], None),
    _condition(["width", "height", '"customMetadata.rating"'],
               ["=", "!=", "<", "<=", ">", ">="], NUMBER),
    _condition(["width", "height", '"customMetadata.rating"'], ["IN", "NOT IN"],
               _list(NUMBER)),
    _condition(["size"], ["=", "!=", "<", "<=", ">", ">="], SIZE),
    _condition(["size"], ["IN", "NOT IN"], _list(SIZE)),
    _condition(["createdAt", "updatedAt", '"customMetadata.launch"'],
               ["=", "!=", "<", "<=", ">", ">="], DATE),
    _condition(["createdAt", '"customMetadata.launch"'], ["IN", "NOT IN"], _list(DATE)),
    _condition(["private", "published", "transparency", '"customMetadata.onSale"'],
               ["=", "!="], BOOLEAN),
    _condition(['"customMetadata.tier"', '"customMetadata.colors"'], ["=", "!="], SCALAR),
    _condition(["type"], ["=", "!="], st.sampled_from(['"file"', '"folder"', '"file-version"'])),
)


def _combined(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    joined = st.tuples(children, st.sampled_from(["AND", "OR", "and", "Or"]), children).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}")
    return st.one_of(joined, children.map(lambda q: f"({q})"))


VALID = st.recursive(CONDITION, _combined, max_leaves=8)


@pytest.mark.property
@given(VALID)
@example('size > "1.5mb" AND (tags IN [] OR width > -1e300)')
def test_valid_queries_parse_and_run(query: str) -> None:
    clause = where(query, now=NOW, fields=FIELDS)
    _compiles(clause)
    with _memory_engine().connect() as conn:
        conn.execute(select(File.id).where(clause)).all()


def test_now_defaults_to_the_current_time() -> None:
    clause = where('createdAt > "1d"')
    compiled = select(File.id).where(clause).compile(dialect=SQLiteDialect())
    moment = next(iter(compiled.params.values()))
    assert abs(moment - (datetime.now(UTC) - timedelta(days=1))) < timedelta(minutes=1)
