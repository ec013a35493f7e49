"""ImageKit's `searchQuery` language, parsed by a grammar and turned into a SQL clause over `File`.

`where(query)` gives the clause for `select(File).where(...)`; every value the query holds
reaches the database as a bound parameter, never as SQL text. A query that does not parse, or
names a field, operator or value we do not know, raises `SearchError` (the API answers 400).

The language, as ImageKit documents it:

- `field op value`, combined with `AND` and `OR` (any case; AND binds tighter) and grouped
  with parentheses. Field names may be quoted (`"customMetadata.brand"`, `"tags"`).
- Operators: `=`, `NOT =` (also `!=`), `:` (begins with; on `path`: that folder and all its
  subfolders), `<`, `<=`, `>`, `>=`, `IN [..]`, `NOT IN [..]`, `HAS` (case-insensitive
  contains), `EXISTS`, `NOT EXISTS`.
- Values: strings in double (or single) quotes with `\\"`, `\\'` and `\\\\` escapes; numbers;
  `true`/`false`; lists `[a, b]`. Dates, relative times and sizes may be quoted or bare
  (ImageKit's own examples write `createdAt < 2d` and `createdAt < 2020-01-01`).
- Dates: `YYYY-MM-DD` (00:00:00 UTC, as ImageKit), `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` with an
  optional `Z` or `+HH:MM` zone (UTC when none). Relative times mean "now minus": `h` hours,
  `d` days, `w` weeks, `m` months (ImageKit's meaning: "2m" is two months, so minutes are
  `min`), `y` years; months and years are calendar ones (Mar 31 less a month is Feb 28/29).
  So `createdAt > "7d"` is "created within the last 7 days".
- Sizes: bytes, or a number with `b`, `kb`, `mb`, `gb` or `tb`, binary (1kb = 1024 bytes),
  any case, fractions allowed (`"1.5mb"`).
- `path = "/a"` is the files in folder /a/ (ImageKit's meaning) or the file at /a; a value
  ending in "/" names a folder only. A missing leading or trailing slash is added.
- At most MAX_LENGTH characters and MAX_DEPTH nested parentheses: longer or deeper is refused.
- Negations (`NOT =`, `NOT IN`) also match files that lack the value (no description, a
  custom metadata key not set, a non-image's width): "not equal to x" includes "nothing".

Choices where ImageKit has data we do not keep: `type` is always "file" here (`"file-version"`
and `"folder"` match nothing); `videoDuration`, `createdBy` and `embeddedMetadata.*` raise
`SearchError` (not supported yet). `HAS` is a substring match, not ImageKit's tokenised
full-text one; on SQLite its case folding covers ASCII letters only.

Prefix matches (`:`) are case-sensitive on both engines, as ImageKit's. On SQLite they compile
to a range (`folder >= '/a/' AND folder < '/a0'`) rather than `LIKE`: SQLite's LIKE folds ASCII
case and cannot use an index once it has an ESCAPE clause, the range does both right. Custom
metadata values are read through typed, guarded JSON accessors compiled per dialect, so a
stored value of another type (left by a deleted field of the same name) never matches and
never makes PostgreSQL fail a cast.
"""

from __future__ import annotations

import calendar
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Final, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedToken
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from pixelport.state.models import File, FileTag

MAX_LENGTH: Final = 4096  # characters: a longer query is refused before parsing
MAX_DEPTH: Final = 32  # parentheses nested deeper than this are refused

GRAMMAR: Final = r"""
?start: disjunction

disjunction: conjunction (_OR conjunction)*
conjunction: _term (_AND _term)*
_term: condition | group
group: _LPAR disjunction _RPAR

condition: _field COMPARE _value
         | _field MEMBER list
         | _field PRESENCE

_field: NAME | STRING
_value: STRING | WORD
list: _LSQB (_value (_COMMA _value)*)? _RSQB

_OR: /or\b/i
_AND: /and\b/i
_LPAR: "("
_RPAR: ")"
_LSQB: "["
_RSQB: "]"
_COMMA: ","
COMPARE: /<=|>=|!=|=|<|>|:|not\s*=|has\b/i
MEMBER: /not\s+in\b|in\b/i
PRESENCE: /not\s+exists\b|exists\b/i
STRING: /"(?:[^"\\]|\\[\s\S])*"|'(?:[^'\\]|\\[\s\S])*'/
NAME: /[^\W\d][\w-]*(?:\.[\w-]+)*/
WORD: /[\w.+:-]+/

%ignore /\s+/
"""

# LALR with the contextual lexer: each parser state lexes only the terminals it accepts, so a
# bare value (WORD) and a field name (NAME) never compete for the same characters.
_PARSER: Final = Lark(GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=False)

# What the parser expected, in words (lark's terminal names are no use to a client).
_EXPECTED: Final = (
    ("NAME", "a field name"),
    ("_LPAR", "'('"),
    ("COMPARE", "an operator"),
    ("WORD", "a value"),
    ("_LSQB", "a list like [\"a\", \"b\"]"),
    ("_COMMA", "','"),
    ("_RSQB", "']'"),
    ("_AND", "AND"),
    ("_OR", "OR"),
    ("_RPAR", "')'"),
    ("$END", "the end of the query"),
)

EQ, NE, PREFIX, HAS = "=", "!=", ":", "HAS"
LT, LE, GT, GE = "<", "<=", ">", ">="
IN, NOT_IN, EXISTS, NOT_EXISTS = "IN", "NOT IN", "EXISTS", "NOT EXISTS"
_ORDER: Final = (EQ, NE, PREFIX, LT, LE, GT, GE, IN, NOT_IN, HAS, EXISTS, NOT_EXISTS)
_NEGATED: Final = {NE: EQ, NOT_IN: IN, NOT_EXISTS: EXISTS}
_COMPARATORS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    EQ: operator.eq, LT: operator.lt, LE: operator.le, GT: operator.gt, GE: operator.ge}

_NUMBER: Final = re.compile(r"[+-]?(?:\d{1,40}(?:\.\d{0,40})?|\.\d{1,40})(?:[eE][+-]?\d{1,4})?")
_SIZE: Final = re.compile(r"(?i)(\d{1,20}(?:\.\d{1,20})?)\s*(b|kb|mb|gb|tb)?")
_SIZE_UNITS: Final = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
_RELATIVE: Final = re.compile(r"(?i)(\d{1,6})\s*(min|h|d|w|m|y)")
_ISO: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?")
# Custom metadata field names as pixelport/library/fields.py allows them; the check also keeps
# the name safe inside a SQLite JSON path ('$."name"'), which has no escapes.
_KEY: Final = re.compile(r"[A-Za-z0-9_-]{1,100}")
# What an INTEGER (width, height) and a BIGINT (size) column hold: PostgreSQL refuses to bind
# a number outside them, so comparisons with one are decided here.
_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)

# A column as a field reads it: a mapped attribute (File.name) or any SQL expression.
_Column = ColumnElement[Any] | QueryableAttribute[Any]


class SearchError(ValueError):
    """A searchQuery that cannot be parsed, or names an unknown field, operator or value."""

    def __init__(self, position: int, detail: str) -> None:
        self.position = position
        self.detail = detail
        self.message = f"Invalid searchQuery at position {position}: {detail}"
        super().__init__(self.message)


def where(query: str, *, now: datetime | None = None,
          fields: Mapping[str, str] | None = None) -> ColumnElement[bool]:
    """The SQL clause over `File` that selects what the searchQuery `query` asks for."""
    _check_shape(query)
    tree = _parse(query)
    moment = datetime.now(UTC) if now is None else (
        now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC))
    return _Builder(moment, fields).clause(tree)


# --- Reading the query --------------------------------------------------------------------

def _check_shape(query: str) -> None:
    """Refuse, before any parsing, what would be expensive or cannot reach a database."""
    if len(query) > MAX_LENGTH:
        raise SearchError(MAX_LENGTH, f"the query is longer than {MAX_LENGTH} characters")
    if not query.strip():
        raise SearchError(0, "the query is empty")
    depth, quote, escaped = 0, "", False
    for position, char in enumerate(query):
        # NUL is refused by PostgreSQL text and a lone surrogate cannot be encoded to UTF-8.
        if char == "\0" or "\ud800" <= char <= "\udfff":
            raise SearchError(position, f"invalid character {char!r}")
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise SearchError(position, f"parentheses nest more than {MAX_DEPTH} deep")
        elif char == ")":
            depth = max(0, depth - 1)


def _parse(query: str) -> Tree[Token]:
    """The parse tree, or a SearchError naming where and what was expected."""
    interactive = _PARSER.parse_interactive(query)
    # iter_parse yields a token before feeding it: `fed` is the last one the parser took.
    fed: Token | None = None
    pending: Token | None = None
    try:
        for token in interactive.iter_parse():
            fed, pending = pending, token
        fed = pending
        # lark leaves feed_eof and accepts unannotated: the ignores below.
        return cast(Tree[Token], interactive.feed_eof(fed))  # type: ignore[no-untyped-call]
    except UnexpectedCharacters as exc:
        position = exc.pos_in_stream or 0
        before = pending if pending is not None and pending.end_pos is not None and (
            pending.end_pos <= position) else fed
        char = query[position] if position < len(query) else ""
        if char in ("\"", "'"):
            raise SearchError(position, "unterminated string") from None
        detail = f"unexpected character {char!r}"
        # The parser's state says what fits here; the lexer's `allowed` is a wider set.
        expected = _expected(interactive.accepts())  # type: ignore[no-untyped-call]
        if expected:
            detail += f", expected {expected}" + (f" after {_shown(before)}" if before else "")
        raise SearchError(position, detail) from None
    except UnexpectedToken as exc:
        token = exc.token
        at_end = token.type == "$END"
        position = len(query) if at_end else (token.start_pos or 0)
        if at_end:
            before = pending
        else:
            before = pending if pending is not None and pending.end_pos is not None and (
                pending.end_pos <= position) else fed
        # A token the contextual lexer met where its state wants none (raised before feeding)
        # comes with the lexer's wider set: the parser's state says what fits here.
        fits = (interactive.accepts()  # type: ignore[no-untyped-call]
                if before is pending and not at_end else exc.expected)
        detail = f"expected {_expected(fits) or 'something else'}"
        if before is not None:
            detail += f" after {_shown(before)}"
        if not at_end:
            detail += f", found {_shown(token)}"
        raise SearchError(position, detail) from None


def _expected(names: set[str] | frozenset[str] | None) -> str:
    """The parser's expected terminals in words: "AND, OR or the end of the query"."""
    names = set(names or ())
    if "NAME" in names:
        names.discard("STRING")  # a quoted field name: still "a field name"
    if "STRING" in names:
        names.add("WORD")
    if names & {"COMPARE", "MEMBER", "PRESENCE"}:
        names.add("COMPARE")
    words = [text for name, text in _EXPECTED if name in names]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _shown(token: Token) -> str:
    """A token as a message quotes it, shortened."""
    text = str(token)
    return repr(text if len(text) <= 40 else text[:37] + "...")


@dataclass(frozen=True, slots=True)
class _Value:
    """One value of the query: its text (unescaped when it was quoted) and where it stands."""

    text: str
    quoted: bool
    position: int


def _value(token: Token) -> _Value:
    """A STRING or WORD token as a value."""
    if token.type == "STRING":
        return _Value(_unquote(str(token)), True, token.start_pos or 0)
    return _Value(str(token), False, token.start_pos or 0)


def _unquote(text: str) -> str:
    """A quoted string's content: `\\"`, `\\'` and `\\\\` unescaped, other backslashes kept."""
    return re.sub(r"\\([\"'\\])", r"\1", text[1:-1])


# --- Values ---------------------------------------------------------------------------------

def _text(value: _Value) -> str:
    """A quoted string value."""
    if not value.quoted:
        raise SearchError(value.position, f"expected a quoted string, found {value.text!r}")
    return value.text


def _number(value: _Value) -> Fraction:
    """A number, exactly (so 2.5 compares right with integers); quoted digits are fine too."""
    text = value.text.strip()
    if not _NUMBER.fullmatch(text):
        raise SearchError(value.position, f"expected a number, found {value.text!r}")
    return Fraction(text)


def _size(value: _Value) -> Fraction:
    """A size in bytes: a number, or `"1.5mb"` (binary units)."""
    if not value.quoted and _NUMBER.fullmatch(value.text):
        return Fraction(value.text)
    match = _SIZE.fullmatch(value.text.strip())
    if not match:
        raise SearchError(value.position, f"expected a size like 1024, \"500kb\" or \"1mb\", "
                                          f"found {value.text!r}")
    return Fraction(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()]


def _float(value: _Value) -> float:
    """A number as a float (custom metadata numbers are JSON numbers)."""
    try:
        return float(_number(value))
    except OverflowError:
        raise SearchError(value.position, f"the number {value.text!r} is out of range") from None


def _boolean(value: _Value) -> bool:
    """`true` or `false` (quoted or not, any case)."""
    lowered = value.text.lower()
    if lowered not in ("true", "false"):
        raise SearchError(value.position, f"expected true or false, found {value.text!r}")
    return lowered == "true"


def _scalar(value: _Value) -> str | int | float | bool:
    """A select option: a quoted string, a number or a boolean."""
    if value.quoted:
        return value.text
    if value.text.lower() in ("true", "false"):
        return value.text.lower() == "true"
    number = _number(value)
    return int(number) if number.denominator == 1 else _float(value)


def _moment(value: _Value, now: datetime) -> datetime:
    """An aware UTC datetime: ISO 8601 (date or date-time) or a relative time before `now`."""
    text = value.text.strip()
    relative = _RELATIVE.fullmatch(text)
    try:
        if relative:
            amount, unit = int(relative[1]), relative[2].lower()
            if unit == "m":
                return _months_before(now, amount)
            if unit == "y":
                return _months_before(now, amount * 12)
            hours = {"min": 1 / 60, "h": 1, "d": 24, "w": 24 * 7}[unit]
            return now - timedelta(hours=amount * hours)
        if _ISO.fullmatch(text):
            moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(
                UTC)
    except (ValueError, OverflowError):
        raise SearchError(value.position, f"{value.text!r} is not a date we can use") from None
    raise SearchError(value.position, "expected a date like \"2024-01-15\" or "
                                      f"\"2024-01-15T10:00:00Z\", or a relative time like "
                                      f"\"7d\", found {value.text!r}")


def _months_before(moment: datetime, months: int) -> datetime:
    """`moment` less calendar months, the day clamped to the month's length."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    if year < 1:
        raise OverflowError("before year 1")
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


# --- SQL building blocks --------------------------------------------------------------------

class _StartsWith(ColumnElement[bool]):
    """`column` begins with `prefix`, case-sensitively on every engine (see the module doc)."""

    inherit_cache = False  # its SQL differs per dialect; statements with it are not cached
    # A condition, not a boolean column: no "= 1" around it on SQLite (which would hide the
    # range from the index), and NOT rather than "= 0" when negated.
    _is_implicitly_boolean = True

    def __init__(self, subject: _Column, prefix: str) -> None:
        self.subject = subject
        self.prefix = prefix
        self.type = Boolean()


@compiles(_StartsWith)
def _starts_with_like(element: _StartsWith, compiler: SQLCompiler, **kw: Any) -> str:
    """LIKE 'prefix%', the user's `%` and `_` escaped (case-sensitive on PostgreSQL)."""
    clause = element.subject.startswith(element.prefix, autoescape=True)
    return compiler.process(clause.self_group(), **kw)


@compiles(_StartsWith, "sqlite")
def _starts_with_range(element: _StartsWith, compiler: SQLCompiler, **kw: Any) -> str:
    """A range in code point order, which is SQLite's binary order on UTF-8 text."""
    clause: ColumnElement[bool] = element.subject >= element.prefix
    upper = _successor(element.prefix)
    if upper is not None:
        clause = and_(clause, element.subject < upper)
    return compiler.process(clause.self_group(), **kw)


def _successor(prefix: str) -> str | None:
    """The least string above every string starting with `prefix` (None: there is none)."""
    chars = list(prefix)
    while chars:
        following = ord(chars.pop()) + 1
        if following <= 0x10FFFF:
            if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored: skip them
                following = 0xE000
            return "".join(chars) + chr(following)
    return None


class _Metadata(ColumnElement[bool]):
    """A condition on one custom metadata value, compiled per dialect.

    `kind` is how the value is read: "text", "number", "boolean", "date" (typed and guarded:
    a value of another JSON type reads as NULL), "scalar" (a select option of any type),
    "array" (a MultiSelect: matches when any element is among `values`) or "present".
    `comparison` is one of = < <= > >= IN : HAS (ignored for "array" and "present").
    """

    inherit_cache = False  # its SQL differs per dialect; statements with it are not cached
    # A condition, not a boolean column: no "= 1" around it on SQLite (which would hide the
    # range from the index), and NOT rather than "= 0" when negated.
    _is_implicitly_boolean = True

    def __init__(self, name: str, kind: str, comparison: str = IN,
                 operands: Sequence[Any] = ()) -> None:
        # Attribute names apart from ColumnElement's own (key, op, ...).
        self.name = name
        self.kind = kind
        self.comparison = comparison
        self.operands = tuple(operands)
        self.type = Boolean()


def _apply(accessor: _Column, op: str, values: Sequence[Any]) -> ColumnElement[bool]:
    """`accessor op value` (or IN values) for a read custom metadata value."""
    if op == IN:
        return accessor.in_(values) if values else false()
    if op == PREFIX:
        return _StartsWith(accessor, values[0])
    if op == HAS:
        return accessor.icontains(values[0], autoescape=True)
    return cast(ColumnElement[bool], _COMPARATORS[op](accessor, values[0]))


def _sqlite_text(moment: datetime) -> str:
    """A UTC moment as SQLite's strftime('%Y-%m-%d %H:%M:%f') writes it."""
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} {moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}")


@compiles(_Metadata)
def _metadata_sqlite(element: _Metadata, compiler: SQLCompiler, **kw: Any) -> str:
    """SQLite's JSON1 functions (also the default, for printing a clause)."""
    column = File.__table__.c.custom_metadata
    path = f'$."{element.name}"'  # the key matched _KEY: no quote can end the label early
    extracted = func.json_extract(column, path)
    values = [int(v) if isinstance(v, bool) else v for v in element.operands]
    clause: ColumnElement[bool]
    if element.kind == "present":
        clause = extracted.is_not(None)
    elif element.kind == "array":
        # json_each walks an array's elements, or yields a lone scalar once: both shapes fit.
        elements = func.json_each(column, path).table_valued("value")
        clause = exists(select(literal(1)).select_from(elements).where(
            elements.c.value.in_(values))) if values else false()
    elif element.kind == "scalar":
        clause = _apply(extracted, element.comparison, values)
    else:
        types = {"text": ["text"], "date": ["text"], "number": ["integer", "real"],
                 "boolean": ["true", "false"]}[element.kind]
        accessor: ColumnElement[Any] = case(
            (func.json_type(column, path).in_(types), extracted))
        if element.kind == "date":
            accessor = func.strftime("%Y-%m-%d %H:%M:%f", accessor)
            values = [_sqlite_text(cast(datetime, v)) for v in values]
        clause = _apply(accessor, element.comparison, values)
    return compiler.process(clause.self_group(), **kw)


# A date PostgreSQL casts without failing, and one that names its zone (else it is UTC).
_PG_DATE: Final = (r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                   r"([Zz]|[+-]\d{2}(:?\d{2})?)?)?$")
_PG_ZONED: Final = r"[Tt ]\d{2}:\d{2}.*([Zz]|[+-]\d{2}(:?\d{2})?)$"


def _pg_text(value: Any) -> str:
    """A scalar as PostgreSQL's `->>` shows it (JSON text for numbers and booleans)."""
    return value if isinstance(value, str) else json.dumps(value)


@compiles(_Metadata, "postgresql")
def _metadata_postgresql(element: _Metadata, compiler: SQLCompiler, **kw: Any) -> str:
    """PostgreSQL's json functions; the cast to json also serves a jsonb column."""
    column: Any = File.__table__.c.custom_metadata
    node = sql_cast(column[element.name], JSON)
    text: ColumnElement[Any] = column[element.name].as_string()
    typeof = func.json_typeof(node)
    clause: ColumnElement[bool]
    if element.kind == "present":
        clause = text.is_not(None)
    elif element.kind == "array":
        array = case((typeof == "array", node), else_=func.json_build_array(node))
        elements = func.json_array_elements_text(array).table_valued("value").render_derived()
        values = [_pg_text(v) for v in element.operands]
        clause = exists(select(literal(1)).select_from(elements).where(
            elements.c.value.in_(values))) if values else false()
    elif element.kind == "scalar":
        clause = _apply(text, element.comparison, [_pg_text(v) for v in element.operands])
    elif element.kind == "date":
        shaped = and_(typeof == "string", text.regexp_match(_PG_DATE))
        accessor: ColumnElement[Any] = case(
            (and_(shaped, text.regexp_match(_PG_ZONED)), sql_cast(text, DateTime(timezone=True))),
            (shaped, func.timezone("UTC", sql_cast(text, DateTime()))))
        clause = _apply(accessor, element.comparison, element.operands)
    else:
        json_type, read = {"text": ("string", text),
                           "number": ("number", column[element.name].as_float()),
                           "boolean": ("boolean", column[element.name].as_boolean())}[element.kind]
        clause = _apply(case((typeof == json_type, read)), element.comparison, element.operands)
    return compiler.process(clause.self_group(), **kw)


# --- Fields -----------------------------------------------------------------------------------

class _Target:
    """How the conditions on one field become SQL; each method gets the positive operator."""

    ops: frozenset[str] = frozenset()

    def __init__(self, label: str) -> None:
        self.label = label

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """`field = value`."""
        raise NotImplementedError

    def compare(self, op: str, value: _Value) -> ColumnElement[bool]:
        """`field < value` and the like."""
        raise NotImplementedError

    def prefix(self, value: _Value) -> ColumnElement[bool]:
        """`field : value`."""
        raise NotImplementedError

    def has(self, value: _Value) -> ColumnElement[bool]:
        """`field HAS value`."""
        raise NotImplementedError

    def member(self, values: Sequence[_Value]) -> ColumnElement[bool]:
        """`field IN [values]`."""
        return or_(*[self.equal(v) for v in values]) if values else false()

    def exists(self) -> ColumnElement[bool]:
        """`field EXISTS`."""
        raise NotImplementedError

    def missing(self) -> ColumnElement[bool] | None:
        """When the field has no value (a negation matches then too); None: it always has."""
        return None


_STRING_OPS: Final = frozenset({EQ, NE, PREFIX, HAS, IN, NOT_IN})
_ID_OPS: Final = frozenset({EQ, NE, IN, NOT_IN})
_NUMBER_OPS: Final = frozenset({EQ, NE, LT, LE, GT, GE, IN, NOT_IN})
_PRESENCE_OPS: Final = frozenset({EXISTS, NOT_EXISTS})


class _Text(_Target):
    """A text column: exact, prefix, contains, lists; EXISTS when it may be empty."""

    def __init__(self, label: str, column: _Column, ops: frozenset[str], *,
                 nullable: bool = False, lower: bool = False) -> None:
        super().__init__(label)
        self.column, self.nullable, self.lower = column, nullable, lower
        self.ops = ops | (_PRESENCE_OPS if nullable else frozenset())

    def _text(self, value: _Value) -> str:
        text = _text(value)
        return text.lower() if self.lower else text  # formats and file types are stored lower

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """Exact and case-sensitive."""
        return self.column == self._text(value)

    def prefix(self, value: _Value) -> ColumnElement[bool]:
        """Begins with, case-sensitive."""
        return _StartsWith(self.column, self._text(value))

    def has(self, value: _Value) -> ColumnElement[bool]:
        """Contains, any case."""
        return self.column.icontains(self._text(value), autoescape=True)

    def member(self, values: Sequence[_Value]) -> ColumnElement[bool]:
        """One of the strings."""
        texts = [self._text(v) for v in values]
        return self.column.in_(texts) if texts else false()

    def exists(self) -> ColumnElement[bool]:
        """Set and not empty."""
        return and_(self.column.is_not(None), self.column != "")

    def missing(self) -> ColumnElement[bool] | None:
        """NULL."""
        return self.column.is_(None) if self.nullable else None


class _Integer(_Target):
    """An integer column (width, height: INTEGER; size: BIGINT, which also takes units)."""

    def __init__(self, label: str, column: _Column, *, nullable: bool,
                 sizes: bool = False) -> None:
        super().__init__(label)
        self.column, self.nullable, self.sizes = column, nullable, sizes
        self.low, self.high = _INT64 if sizes else _INT32
        self.ops = _NUMBER_OPS | (_PRESENCE_OPS if nullable else frozenset())

    def _number(self, value: _Value) -> Fraction:
        return _size(value) if self.sizes else _number(value)

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """Equal: never, for a fraction or a number no 64-bit column holds."""
        number = self._number(value)
        if number.denominator != 1 or not self.low <= number <= self.high:
            return false()
        return self.column == int(number)

    def compare(self, op: str, value: _Value) -> ColumnElement[bool]:
        """Compared with the integers the bound allows; only what the column holds is bound."""
        number = self._number(value)
        if op in (GT, GE):
            low = math.floor(number) + 1 if op == GT else math.ceil(number)
            if low > self.high:
                return false()
            return self.column.is_not(None) if low <= self.low else self.column >= low
        high = math.ceil(number) - 1 if op == LT else math.floor(number)
        if high < self.low:
            return false()
        return self.column.is_not(None) if high >= self.high else self.column <= high

    def member(self, values: Sequence[_Value]) -> ColumnElement[bool]:
        """One of the numbers (fractions can match none)."""
        numbers = [self._number(v) for v in values]
        whole = [int(n) for n in numbers if n.denominator == 1 and self.low <= n <= self.high]
        return self.column.in_(whole) if whole else false()

    def exists(self) -> ColumnElement[bool]:
        """Known (an image's width and height)."""
        return self.column.is_not(None)

    def missing(self) -> ColumnElement[bool] | None:
        """Not known."""
        return self.column.is_(None) if self.nullable else None


class _Moment(_Target):
    """A timestamp column (createdAt, updatedAt)."""

    ops = _NUMBER_OPS

    def __init__(self, label: str, column: _Column, now: datetime) -> None:
        super().__init__(label)
        self.column, self.now = column, now

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """At that instant."""
        return self.column == _moment(value, self.now)

    def compare(self, op: str, value: _Value) -> ColumnElement[bool]:
        """Before or after."""
        return cast(ColumnElement[bool],
                    _COMPARATORS[op](self.column, _moment(value, self.now)))

    def member(self, values: Sequence[_Value]) -> ColumnElement[bool]:
        """At one of the instants."""
        moments = [_moment(v, self.now) for v in values]
        return self.column.in_(moments) if moments else false()


class _Flag(_Target):
    """A boolean column (private, published, transparency)."""

    ops = frozenset({EQ, NE})

    def __init__(self, label: str, column: _Column) -> None:
        super().__init__(label)
        self.column = column

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """True or false."""
        return self.column.is_(_boolean(value))


class _Tags(_Target):
    """The file's tags (both kinds), or its AITags only."""

    ops = frozenset({EQ, NE, PREFIX, HAS, IN, NOT_IN, EXISTS, NOT_EXISTS})

    def __init__(self, label: str, *, ai_only: bool) -> None:
        super().__init__(label)
        self.ai_only = ai_only

    def _having(self, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
        # `id IN (SELECT file_id ... WHERE tag ...)` rather than a correlated EXISTS: the
        # subquery reads ix_file_tags_tag, and the files come by primary key.
        tagged = select(FileTag.file_id).where(*conditions)
        if self.ai_only:
            tagged = tagged.where(FileTag.ai.is_(True))
        return File.id.in_(tagged)

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """Has this tag."""
        return self._having(FileTag.tag == _text(value))

    def prefix(self, value: _Value) -> ColumnElement[bool]:
        """Has a tag beginning with this."""
        return self._having(_StartsWith(FileTag.tag, _text(value)))

    def has(self, value: _Value) -> ColumnElement[bool]:
        """Has a tag containing this, any case."""
        return self._having(FileTag.tag.icontains(_text(value), autoescape=True))

    def member(self, values: Sequence[_Value]) -> ColumnElement[bool]:
        """Has any of these tags."""
        tags = [_text(v) for v in values]
        return self._having(FileTag.tag.in_(tags)) if tags else false()

    def exists(self) -> ColumnElement[bool]:
        """Has any tag."""
        return self._having()


class _Type(_Target):
    """`type`: every row of `files` is a file."""

    ops = _ID_OPS
    KINDS: Final = ("file", "file-version", "folder")

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """True for "file"; file versions and folders are not in this table."""
        kind = _text(value)
        if kind not in self.KINDS:
            raise SearchError(value.position, f"type is one of {', '.join(self.KINDS)}, "
                                              f"not {kind!r}")
        return true() if kind == "file" else false()


def _folder(text: str) -> str:
    """A folder path as stored: `/a/b/` (empty segments dropped; `/` for the root)."""
    return "/" + "".join(f"{segment}/" for segment in text.split("/") if segment)


class _Path(_Target):
    """`path`: `=` a folder (ImageKit's meaning) or a file path; `:` a folder and below."""

    ops = _STRING_OPS

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """Files in that folder, or the file at that path (when it does not end with /)."""
        text = _text(value)
        in_folder = File.folder == _folder(text)
        if text.endswith("/") or not text.strip("/"):
            return in_folder
        return or_(File.path == "/" + text.lstrip("/"), in_folder)

    def prefix(self, value: _Value) -> ColumnElement[bool]:
        """Files in that folder or any folder below it."""
        return _StartsWith(File.folder, _folder(_text(value)))

    def has(self, value: _Value) -> ColumnElement[bool]:
        """The file path contains this, any case."""
        return File.path.icontains(_text(value), autoescape=True)


_META_OPS: Final = {
    "Text": _STRING_OPS | _PRESENCE_OPS,
    "Textarea": _STRING_OPS | _PRESENCE_OPS,
    "Number": _NUMBER_OPS | _PRESENCE_OPS,
    "Date": _NUMBER_OPS | _PRESENCE_OPS,
    "Boolean": frozenset({EQ, NE}) | _PRESENCE_OPS,
    "SingleSelect": _ID_OPS | _PRESENCE_OPS,
    "MultiSelect": _ID_OPS | _PRESENCE_OPS,
    None: frozenset(_ORDER),
}


class _Meta(_Target):
    """`customMetadata.<key>`, read as its field's schema type says (inferred without one)."""

    def __init__(self, label: str, key: str, kind: str | None, now: datetime) -> None:
        super().__init__(label)
        self.key, self.kind, self.now = key, kind, now
        self.ops = _META_OPS[kind]

    def _match(self, kind: str, op: str, values: Sequence[Any] = ()) -> ColumnElement[bool]:
        return _Metadata(self.key, kind, op, values)

    def _typed(self, value: _Value) -> tuple[str, Any]:
        """How to read the value for `=` and the value to compare with."""
        kind = self.kind
        if kind in ("Text", "Textarea"):
            return "text", _text(value)
        if kind == "Number":
            return "number", _float(value)
        if kind == "Date":
            return "date", _moment(value, self.now)
        if kind == "Boolean":
            return "boolean", _boolean(value)
        if kind == "MultiSelect":
            return "array", _scalar(value)
        return "scalar", _scalar(value)  # SingleSelect, and a field without a schema

    def equal(self, value: _Value) -> ColumnElement[bool]:
        """Equal to the value, read as the field's type."""
        kind, typed = self._typed(value)
        return self._match(kind, IN if kind == "array" else EQ, [typed])

    def compare(self, op: str, value: _Value) -> ColumnElement[bool]:
        """Numbers as numbers, dates as instants (no schema: a bare number is a number)."""
        if self.kind == "Number" or (self.kind is None and not value.quoted
                                     and _NUMBER.fullmatch(value.text)):
            return self._match("number", op, [_float(value)])
        return self._match("date", op, [_moment(value, self.now)])

    def prefix(self, value: _Value) -> ColumnElement[bool]:
        """A text value beginning with this, case-sensitive."""
        return self._match("text", PREFIX, [_text(value)])

    def has(self, value: _Value) -> ColumnElement[bool]:
        """A text value containing this, any case."""
        return self._match("text", HAS, [_text(value)])

    def member(self, values: Sequence[_Value]) -> ColumnElement[bool]:
        """One of the values (a MultiSelect: any of its options among them)."""
        if not values:
            return false()
        if self.kind in ("Number", "Date", "Boolean", "Text", "Textarea"):
            typed = [self._typed(v) for v in values]
            return self._match(typed[0][0], IN, [t for _, t in typed])
        kind = "array" if self.kind == "MultiSelect" else "scalar"
        return self._match(kind, IN, [_scalar(v) for v in values])

    def exists(self) -> ColumnElement[bool]:
        """The key is set and not null."""
        return self._match("present", IN)

    def missing(self) -> ColumnElement[bool] | None:
        """The key is not set, or null."""
        return not_(self._match("present", IN))


_UNSUPPORTED: Final = ("videoduration", "createdby")  # ImageKit's; not kept here yet


class _Builder:
    """Turns the parse tree into the clause."""

    def __init__(self, now: datetime, fields: Mapping[str, str] | None) -> None:
        self.now, self.fields = now, fields

    def clause(self, tree: Tree[Token]) -> ColumnElement[bool]:
        """The clause of a (sub)tree; nesting is bounded by MAX_DEPTH, so recursion is too."""
        parts = [c for c in tree.children if isinstance(c, Tree)]
        if tree.data == "disjunction":
            return or_(*[self.clause(p) for p in parts])
        if tree.data == "conjunction":
            return and_(*[self.clause(p) for p in parts])
        if tree.data == "group":
            return self.clause(parts[0])
        return self.condition(tree)

    def target(self, token: Token) -> _Target:
        """The field a NAME or quoted STRING token names."""
        name = _unquote(str(token)) if token.type == "STRING" else str(token)
        position = token.start_pos or 0
        lowered = name.lower()
        if lowered.startswith("custommetadata."):
            key = name[len("customMetadata."):]
            if not _KEY.fullmatch(key):
                raise SearchError(position, f"invalid custom metadata field name {key!r}")
            if self.fields is not None and key not in self.fields:
                raise SearchError(position, f"unknown custom metadata field {key!r}")
            kind = self.fields[key] if self.fields is not None else None
            return _Meta(name, key, kind if kind in _META_OPS else None, self.now)
        if lowered in _UNSUPPORTED or lowered.startswith("embeddedmetadata."):
            raise SearchError(position, f"the field {name!r} is not supported yet")
        make = _FIELDS.get(lowered)
        if make is None:
            raise SearchError(position, f"unknown field {name!r}")
        return make(name, self.now)

    def condition(self, tree: Tree[Token]) -> ColumnElement[bool]:
        """One `field op value`."""
        tokens = [c for c in tree.children if isinstance(c, Token)]
        field, op_token = tokens[0], tokens[1]
        target = self.target(field)
        op = " ".join(str(op_token).upper().split())
        op = NE if op.replace(" ", "") == "NOT=" else op
        if op not in target.ops:
            allowed = ", ".join(o for o in _ORDER if o in target.ops)
            raise SearchError(op_token.start_pos or 0,
                              f"{str(op_token)!r} does not apply to {target.label!r}"
                              f" (it takes {allowed})")
        base = _NEGATED.get(op, op)
        if base == IN:
            lists = [c for c in tree.children if isinstance(c, Tree)]
            values = [_value(t) for t in lists[0].children if isinstance(t, Token)]
            clause = target.member(values)
        elif base == EXISTS:
            clause = target.exists()
        else:
            value = _value(tokens[2])
            if base == EQ:
                clause = target.equal(value)
            elif base == PREFIX:
                clause = target.prefix(value)
            elif base == HAS:
                clause = target.has(value)
            else:
                clause = target.compare(base, value)
        if op == base:
            return clause
        absent = target.missing() if base != EXISTS else None
        return not_(clause) if absent is None else or_(absent, not_(clause))


def _fields() -> dict[str, Callable[[str, datetime], _Target]]:
    """The searchable fields by lower-case name, each making its target."""
    def text(column: _Column, ops: frozenset[str], **options: bool
             ) -> Callable[[str, datetime], _Target]:
        return lambda label, now: _Text(label, column, ops, **options)

    return {
        "name": text(File.name, _STRING_OPS),
        "id": text(File.id, _ID_OPS),
        "mime": text(File.mime, _STRING_OPS),
        "format": text(File.format, _ID_OPS, lower=True),
        "filetype": text(File.file_type, _ID_OPS, lower=True),
        "description": text(File.description, _STRING_OPS, nullable=True),
        "customcoordinates": text(File.custom_coordinates, _ID_OPS, nullable=True),
        "tags": lambda label, now: _Tags(label, ai_only=False),
        "aitags": lambda label, now: _Tags(label, ai_only=True),
        "type": lambda label, now: _Type(label),
        "path": lambda label, now: _Path(label),
        "createdat": lambda label, now: _Moment(label, File.created_at, now),
        "updatedat": lambda label, now: _Moment(label, File.updated_at, now),
        "width": lambda label, now: _Integer(label, File.width, nullable=True),
        "height": lambda label, now: _Integer(label, File.height, nullable=True),
        "size": lambda label, now: _Integer(label, File.size, nullable=False, sizes=True),
        "private": lambda label, now: _Flag(label, File.is_private),
        "published": lambda label, now: _Flag(label, File.is_published),
        "transparency": lambda label, now: _Flag(label, File.has_alpha),
    }


_FIELDS: Final = _fields()
