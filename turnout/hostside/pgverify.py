"""Full cross-engine verification of an SQLite → PostgreSQL copy (issue 10 item 5, SPEC S3.3,
RELIABILITY 18): counts, and row hashes computed on both engines from one canonical row text.

Method (nothing is pulled from PostgreSQL row by row for the full pass):

- A table with a single integer key is cut into chunks by key range (``floor(key / chunk_rows)``).
  PostgreSQL answers ONE query per table, ``GROUP BY chunk`` with ``count(*)`` and
  ``md5(string_agg(<row text>, E'\\n' ORDER BY key))``; the SQLite side streams the same rows in
  key order (the snapshot, read-only), converts them with ``sqlite_types.RowConverter`` exactly
  as the copy did, renders the same row text in Python and hashes per chunk. Both sides run at
  once (the PostgreSQL query in a thread). A chunk whose count or hash differs (or that one side
  lacks) is narrowed down by per-row md5s of that key range on both sides: the keys missing in
  the target, extra in the target, and present on both with different content.
- A table without one (composite or text key, or none): counts and the multiset of row hashes
  (``md5`` of the sorted per-row md5s); a mismatch names SQLite rowids (missing) and PostgreSQL
  ctids (extra). That path holds one 32-byte hash per source row in memory.
- ``sample`` (e.g. 0.05): that share of each table's chunks (at least one), chosen by a hash of
  (table, chunk) so every run picks the same ones; counts are still exact and full.

Canonical row text: the columns' canonical texts joined by ``,``; NULL is ``\\N`` (no value's
text is that). Each type has a pair, a Python function on the converted value and an SQL
expression on the column, that give byte-identical text (``CANONICAL_KINDS``):

=============  =========================================  =========================================
kind           PostgreSQL                                 Python (converted value)
=============  =========================================  =========================================
integer        ``c::text``                                ``str(v)``
boolean        ``c::text`` (``true``/``false``)           ``'true'``/``'false'``
double / real  ``encode(float8send(c), 'hex')`` (exact    ``struct.pack('>d', v).hex()``; every
               IEEE bytes, ``-0`` kept; NaN → ``NaN``)    NaN → ``NaN``; real: ``float4send``/``>f``
numeric        ``trim_scale(c)::text``                    ``Decimal`` rounded to the column's scale
                                                          (half away from zero), trailing zeros
                                                          dropped, never an exponent
text, varchar  ``length(c) || ':' || c``                  ``f'{len(v)}:{v}'`` ('a','bc' ≠ 'ab','c')
char(n)        the same on ``c::text`` (padding dropped)  the same on ``v.rstrip(' ')``
uuid           ``c::text``                                ``str(uuid.UUID(v))``
timestamptz    ``encode(timestamptz_send(c), 'hex')``:    µs since 2000-01-01 UTC, ``>q`` hex
               µs since 2000-01-01 UTC, any TimeZone      (a naive value is taken as UTC)
timestamp      ``encode(timestamp_send(c), 'hex')``       the same, wall clock; timestamp(p) and
                                                          time(p) round as PostgreSQL does
date           ``encode(date_send(c), 'hex')``            days since 2000-01-01, ``>i`` hex
time           ``encode(time_send(c), 'hex')``            µs since midnight, ``>q`` hex
json / jsonb   ``c::jsonb::text`` (jsonb's key order and  parsed, rendered as jsonb prints: keys by
               number forms; whitespace gone); a json     byte length then bytes, ``, `` and
               text holding ``\\u0000`` (jsonb refuses  ``: ``, numbers as numeric prints them;
               it) as written: ``R<length>:<text>``       ``\\u0000``: the same ``R`` form
bytea          ``encode(c, 'hex')``                       ``v.hex()``
other          output function (``concat(c)``), length-   ``str(v)``, length-prefixed: best effort
               prefixed                                   (the text the input function was given)
=============  =========================================  =========================================

The report names keys only, never values (they may be personal data); per table it gives the
counts, the chunks compared, the differences (key range; keys missing, extra, different: at most
``max_keys`` named, all counted), the lossy conversions seen, and each side's rows/s.

    python -c 'from turnout.remote import hostside_command as c
    print(c("sqlite_verify", {"sqlite_path": "/srv/app/state/snapshot.db",
        "dsn_env": "DATABASE_URL", "report_path": "/tmp/verify.json"}).get_raw_value())' | sh
"""

import bisect
import hashlib
import json
import math
import operator
import os
import sqlite3
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal

from turnout.hostside.base import HostsideError, append_log, write_json_atomically
from turnout.hostside.pg import pg_connect, pg_display
from turnout.hostside.progress import Ticker, emit, interval_of
from turnout.hostside.sqlite_types import (
    BadValue,
    RowConverter,
    TablePair,
    TargetColumn,
    open_source,
    table_pairs,
)

NULL_TEXT = "\\N"  # no canonical value text starts with a backslash
DEFAULT_CHUNK_ROWS = 10_000
DEFAULT_MAX_KEYS = 20
BATCH_ROWS = 2000  # SQLite rows fetched and converted at a time
EPOCH_2000 = datetime(2000, 1, 1)  # noqa: DTZ001 - PostgreSQL's epoch for timestamp
EPOCH_2000_UTC = datetime(2000, 1, 1, tzinfo=UTC)
DATE_2000 = date(2000, 1, 1)
_DOUBLE = struct.Struct(">d").pack
_REAL = struct.Struct(">f").pack
_INT64 = struct.Struct(">q").pack
_INT32 = struct.Struct(">i").pack
_WIDE = Context(prec=200_000)  # numeric holds up to 131072 digits before the point


# Canonical texts: the Python half of each pair ------------------------------------------------


def integer_text(value: int) -> str:
    """``integer::text``.

    >>> integer_text(-42)
    '-42'
    """
    return str(value)


def boolean_text(value: object) -> str:
    """PostgreSQL's ``boolean::text``.

    >>> boolean_text(True), boolean_text(0)
    ('true', 'false')
    """
    return "true" if value else "false"


def double_text(value: float) -> str:
    """The IEEE 754 binary64 bytes in hex; every NaN is ``NaN`` (PostgreSQL: NaN = NaN).

    >>> double_text(0.1 + 0.2), double_text(-0.0), double_text(float("nan"))
    ('3fd3333333333334', '8000000000000000', 'NaN')
    """
    if value != value:  # noqa: PLR0124 - NaN
        return "NaN"
    return _DOUBLE(value).hex()


def real_text(value: float) -> str:
    """The value rounded to binary32 (as ``real`` stores it), bytes in hex; a value out of
    ``real``'s range cannot be in the target and renders as ``overflow``.

    >>> real_text(0.1), real_text(float("inf"))
    ('3dcccccd', '7f800000')
    """
    if value != value:  # noqa: PLR0124 - NaN
        return "NaN"
    try:
        return _REAL(value).hex()
    except OverflowError:
        return "overflow"


def numeric_text(value: object, scale: int | None = None) -> str:
    """``trim_scale(numeric)::text``: rounded to the column's ``scale`` (half away from zero, as
    PostgreSQL), trailing zeros dropped, no exponent, no negative zero. A float becomes numeric
    the way ``float8::numeric`` does (15 significant digits).

    >>> numeric_text(Decimal("1.50"), 2), numeric_text(Decimal("1E+2")), numeric_text(0.1 + 0.2)
    ('1.5', '100', '0.3')
    """
    if value.__class__ is not Decimal:
        if isinstance(value, float):
            if value != value:  # noqa: PLR0124 - NaN
                return "NaN"
            if math.isinf(value):
                return "Infinity" if value > 0 else "-Infinity"
            value = Decimal(f"{value:.15g}")
        else:
            value = Decimal(value)
    if not value.is_finite():
        return "NaN" if value.is_nan() else "Infinity" if value > 0 else "-Infinity"
    text = format(value, "f")
    if scale is not None:
        point = text.find(".")
        if scale < 0 or (point >= 0 and len(text) - point - 1 > scale):
            quantum = Decimal(1).scaleb(-scale)
            text = format(value.quantize(quantum, rounding=ROUND_HALF_UP, context=_WIDE), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def text_text(value: str) -> str:
    """Length-prefixed, so no two column lists render alike (``'a','bc'`` vs ``'ab','c'``).

    >>> text_text("a,b"), text_text("")
    ('3:a,b', '0:')
    """
    return f"{len(value)}:{value}"


def char_text(value: str) -> str:
    """``character(n)``: PostgreSQL pads with spaces and ``::text`` drops them again.

    >>> char_text("ab  ")
    '2:ab'
    """
    value = value.rstrip(" ")
    return f"{len(value)}:{value}"


def uuid_text(value: object) -> str:
    """``uuid::text``: lower case with hyphens.

    >>> uuid_text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'
    """
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def round_micros(micros: int, precision: int | None) -> int:
    """Microseconds rounded to ``precision`` fractional digits, half away from zero (as
    PostgreSQL's ``timestamp(p)`` and ``time(p)``).

    >>> round_micros(1_234_567, 3), round_micros(-1_500, 3)
    (1235000, -2000)
    """
    if precision is None or precision >= 6:
        return micros
    scale = 10 ** (6 - precision)
    if micros >= 0:
        return (micros + scale // 2) // scale * scale
    return -((-micros + scale // 2) // scale * scale)


def timestamptz_text(value: datetime, precision: int | None = None) -> str:
    """Microseconds since 2000-01-01 UTC as PostgreSQL's 8 binary bytes, hex (independent of any
    session TimeZone); a naive value is taken as UTC.

    >>> timestamptz_text(datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC))
    '0000000000000001'
    """
    delta = value - (EPOCH_2000_UTC if value.tzinfo is not None else EPOCH_2000)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return _INT64(round_micros(micros, precision)).hex()


def timestamp_text(value: datetime, precision: int | None = None) -> str:
    """Microseconds since 2000-01-01 (wall clock) as 8 bytes, hex; an aware value is taken in UTC.

    >>> timestamp_text(datetime(1999, 12, 31, 23, 59, 59, 999_999))
    'ffffffffffffffff'
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    delta = value - EPOCH_2000
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return _INT64(round_micros(micros, precision)).hex()


def date_text(value: date) -> str:
    """Days since 2000-01-01 as 4 bytes, hex (``date_send``).

    >>> date_text(date(2000, 1, 2))
    '00000001'
    """
    if isinstance(value, datetime):
        value = value.date()
    return _INT32((value - DATE_2000).days).hex()


def time_text(value: object, precision: int | None = None) -> str:
    """Microseconds since midnight as 8 bytes, hex (``time_send``).

    >>> time_text(datetime(2020, 1, 1, 0, 0, 1).time())
    '00000000000f4240'
    """
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
    return _INT64(round_micros(micros + value.microsecond, precision)).hex()


def json_string(value: str) -> str:
    """A JSON string as jsonb prints it (non-ASCII kept, control characters escaped).

    >>> json_string('a"\\té')
    '"a\\\\"\\\\té"'
    """
    return json.dumps(value, ensure_ascii=False)


def jsonb_key_order(item: tuple[str, object]) -> tuple[int, bytes]:
    """jsonb orders an object's keys by byte length, then bytes.

    >>> sorted([("bb", 1), ("c", 2), ("ab", 3)], key=jsonb_key_order)
    [('c', 2), ('ab', 3), ('bb', 1)]
    """
    encoded = item[0].encode("utf-8", "surrogatepass")
    return len(encoded), encoded


def jsonb_value_text(value: object) -> str:
    """A parsed JSON value rendered as PostgreSQL prints jsonb.

    >>> jsonb_value_text({"b": [Decimal("1.0"), Decimal("1E+2")], "a": None})
    '{"a": null, "b": [1.0, 100]}'
    """
    if isinstance(value, dict):
        items = sorted(value.items(), key=jsonb_key_order)
        return "{" + ", ".join(f"{json_string(k)}: {jsonb_value_text(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_value_text(item) for item in value) + "]"
    if isinstance(value, str):
        return json_string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        return json_number_text(value)
    return str(value)


def json_number_text(value: Decimal) -> str:
    """A JSON number as jsonb's numeric prints it: exponent applied, the digits after the point
    kept, no negative zero.

    >>> json_number_text(Decimal("1.50e1")), json_number_text(Decimal("-0.0"))
    ('15.0', '0.0')
    """
    if not value:
        value = abs(value)
    return format(value, "f")


class NeedsDecimal(Exception):  # noqa: N818 - a signal between two functions
    """A JSON number whose float ``repr`` is not the text jsonb prints for it."""


def plain_json_float(text: str) -> float:
    """A JSON number as a float when ``json.dumps`` would print it as jsonb does (the usual
    case: text written by Python), else ``NeedsDecimal``.

    >>> plain_json_float("0.5")
    0.5
    >>> plain_json_float("1e2")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    turnout.hostside.pgverify.NeedsDecimal
    """
    number = float(text)
    if repr(number) != text or (not number and text[0] == "-"):
        raise NeedsDecimal
    return number


def jsonb_object(pairs: list[tuple[str, object]]) -> dict:
    """An object with its keys in jsonb's order (the last of duplicate keys wins, as in jsonb).

    >>> jsonb_object([("bb", 1), ("a", 2), ("bb", 3)])
    {'a': 2, 'bb': 3}
    """
    return dict(sorted(pairs, key=jsonb_key_order))


def json_text(value: object) -> str:
    """JSON text (or an already parsed value) as ``::jsonb::text`` prints it: whitespace and
    key order of the source do not matter, numbers as numeric. (Self-delimiting: no prefix.)
    Fast path: the C parser and encoder, keys ordered while parsing; a number Python would
    print differently takes the exact path (``Decimal``, ``jsonb_value_text``).

    >>> json_text('{ "b":1e2, "a" : [1.0, "x"] }')
    '{"a": [1.0, "x"], "b": 100}'
    """
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8")
    if isinstance(value, str):
        try:
            return _JSONB_ENCODER.encode(_JSONB_DECODER.decode(value))
        except NeedsDecimal:
            value = _DECIMAL_DECODER.decode(value)
    return jsonb_value_text(value)


def json_column_text(value: str) -> str:
    """A ``json`` column: as ``json_text``, but a text holding ``\\u0000`` (which json keeps and
    jsonb refuses) is compared as written: ``R<length>:<text>`` (no JSON text starts with R).

    >>> json_column_text('{"a" : 1}'), json_column_text('"\\\\u0000"')
    ('{"a": 1}', 'R8:"\\\\u0000"')
    """
    if "\\u0000" in value:
        return f"R{len(value)}:{value}"
    return json_text(value)


_JSONB_DECODER = json.JSONDecoder(parse_float=plain_json_float, object_pairs_hook=jsonb_object)
_DECIMAL_DECODER = json.JSONDecoder(parse_float=Decimal)
_JSONB_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def bytea_text(value: bytes) -> str:
    """``encode(bytea, 'hex')``.

    >>> bytea_text(b"\\x00a")
    '0061'
    """
    return bytes(value).hex()


def other_text(value: object) -> str:
    """Best effort for types without a pair: ``str()``, length-prefixed (PostgreSQL: the type's
    output function, which gives back the text the copy gave its input function when that text
    was already in the output's form).

    >>> other_text(7)
    '1:7'
    """
    text = str(value)
    return f"{len(text)}:{text}"


# Canonical texts: the SQL half of each pair, and the pairing ------------------------------------


CANONICAL_SQL = {
    "integer": "{c}::text",
    "boolean": "{c}::text",
    "double": "CASE WHEN {c} = 'NaN' THEN 'NaN' ELSE encode(float8send({c}), 'hex') END",
    "real": "CASE WHEN {c} = 'NaN' THEN 'NaN' ELSE encode(float4send({c}), 'hex') END",
    "numeric": "trim_scale({c})::text",
    "text": "length({c})::text || ':' || {c}",
    "char": "length({c}::text)::text || ':' || {c}::text",
    "uuid": "{c}::text",
    "timestamptz": "encode(timestamptz_send({c}), 'hex')",
    "timestamp": "encode(timestamp_send({c}), 'hex')",
    "date": "encode(date_send({c}), 'hex')",
    "time": "encode(time_send({c}), 'hex')",
    "json": "CASE WHEN strpos({c}::text, '\\u0000') > 0 "
    "THEN 'R' || length({c}::text)::text || ':' || {c}::text ELSE {c}::jsonb::text END",
    "jsonb": "{c}::text",
    "bytea": "encode({c}, 'hex')",
    "other": "CASE WHEN {c} IS NOT NULL THEN length(concat({c}))::text || ':' || concat({c}) END",
}
CANONICAL_KINDS = tuple(CANONICAL_SQL)


@dataclass(frozen=True)
class ColumnKind:
    """How one target column is compared: its kind and the type's scale or precision."""

    kind: str
    scale: int | None = None  # numeric(p, s): s; timestamp(p) / time(p): p


def type_modifiers(pg_type: str) -> list[int]:
    """The numbers in a type's parentheses.

    >>> type_modifiers("numeric(10,2)"), type_modifiers("text")
    ([10, 2], [])
    """
    inside = pg_type.partition("(")[2].partition(")")[0]
    return [int(part) for part in inside.split(",") if part.strip().lstrip("-").isdigit()]


def column_kind(pg_type: str) -> ColumnKind:
    """The canonical kind of a column from its ``format_type`` text.

    >>> column_kind("numeric(10,2)"), column_kind("timestamp(3) with time zone")
    (ColumnKind(kind='numeric', scale=2), ColumnKind(kind='timestamptz', scale=3))
    >>> column_kind("timestamp without time zone").kind, column_kind("time without time zone").kind
    ('timestamp', 'time')
    """
    name = pg_type.strip().lower()
    base = name.partition("(")[0].strip()
    modifiers = type_modifiers(name)
    simple = {
        "smallint": "integer",
        "integer": "integer",
        "bigint": "integer",
        "boolean": "boolean",
        "double precision": "double",
        "real": "real",
        "text": "text",
        "character varying": "text",
        "character": "char",
        "uuid": "uuid",
        "date": "date",
        "json": "json",
        "jsonb": "jsonb",
        "bytea": "bytea",
    }
    if base in simple:
        return ColumnKind(simple[base])
    if base in ("numeric", "decimal"):
        return ColumnKind("numeric", modifiers[1] if len(modifiers) == 2 else None)
    precision = modifiers[0] if modifiers else None
    base = base.split(" ")[0]  # timestamp(3) with time zone, time without time zone
    if base == "timestamp" and name.endswith(" with time zone"):
        return ColumnKind("timestamptz", precision)
    if base == "timestamp" and name.endswith(" without time zone"):
        return ColumnKind("timestamp", precision)
    if base == "time" and name.endswith(" without time zone"):
        return ColumnKind("time", precision)
    return ColumnKind("other")


_BOOLEAN_TEXTS = {True: "true", False: "false"}


def python_renderer(kind: ColumnKind) -> Callable[[object], str]:
    """The Python half of a column's pair (for a value that is not None).

    >>> python_renderer(column_kind("numeric(10,2)"))(Decimal("1.50"))
    '1.5'
    """
    if kind.kind == "numeric" and kind.scale is not None:
        return lambda value: numeric_text(value, kind.scale)
    if kind.kind in ("timestamptz", "timestamp", "time") and kind.scale is not None:
        function = {"timestamptz": timestamptz_text, "timestamp": timestamp_text}.get(
            kind.kind, time_text
        )
        return lambda value: function(value, kind.scale)
    return {
        "integer": str,  # the builtin: no Python frame per value
        "boolean": _BOOLEAN_TEXTS.__getitem__,
        "double": double_text,
        "real": real_text,
        "numeric": numeric_text,
        "text": text_text,
        "char": char_text,
        "uuid": uuid_text,
        "timestamptz": timestamptz_text,
        "timestamp": timestamp_text,
        "date": date_text,
        "time": time_text,
        "json": json_column_text,
        "jsonb": json_text,
        "bytea": bytea_text,
    }.get(kind.kind, other_text)


def pg_column_sql(column: TargetColumn):  # noqa: ANN201 - psycopg.sql.Composed
    """The SQL half of a column's pair, NULL included (``coalesce(…, '\\N')``).

    >>> print(pg_column_sql(TargetColumn("B", "bytea")).as_string(None))
    coalesce(encode("B", 'hex'),  E'\\\\N')
    """
    from psycopg import sql

    expression = sql.SQL(CANONICAL_SQL[column_kind(column.pg_type).kind]).format(
        c=sql.Identifier(column.name)
    )
    return sql.SQL("coalesce({}, {})").format(expression, sql.Literal(NULL_TEXT))


def pg_row_sql(columns: Sequence[TargetColumn]):  # noqa: ANN201 - psycopg.sql.Composed
    """The canonical row text as an SQL expression: the columns' texts joined by ``,``.

    >>> columns = [TargetColumn("id", "integer"), TargetColumn("b", "bytea")]
    >>> print(pg_row_sql(columns).as_string(None))
    coalesce("id"::text,  E'\\\\N') || ',' || coalesce(encode("b", 'hex'),  E'\\\\N')
    """
    from psycopg import sql

    return sql.SQL(" || ',' || ").join(pg_column_sql(column) for column in columns)


@dataclass(frozen=True)
class RowRenderer:
    """The Python half for a whole row: ``RowRenderer(columns)(values)`` is the canonical text.

    >>> RowRenderer([TargetColumn("id", "integer"), TargetColumn("n", "text")])((1, None))
    '1,\\\\N'
    """

    columns: Sequence[TargetColumn]
    functions: tuple = field(init=False)

    def __post_init__(self) -> None:
        renderers = tuple(python_renderer(column_kind(c.pg_type)) for c in self.columns)
        object.__setattr__(self, "functions", renderers)

    def __call__(self, row: Sequence[object]) -> str:
        return ",".join(
            [
                NULL_TEXT if value is None else f(value)
                for f, value in zip(self.functions, row, strict=True)
            ]
        )

    def row_texts(self, rows: Sequence[Sequence[object]]) -> list[str]:
        """The texts of ``rows``, rendered column by column: the same texts as calling the
        renderer on each row, with less work per value.

        >>> render = RowRenderer([TargetColumn("id", "integer"), TargetColumn("n", "text")])
        >>> render.row_texts([(1, "a"), (2, None)]) == [render((1, "a")), render((2, None))]
        True
        """
        if not rows:
            return []
        columns = zip(*rows, strict=True)
        rendered = [
            column_texts(function, values)
            for function, values in zip(self.functions, columns, strict=True)
        ]
        return list(map(",".join, zip(*rendered, strict=True)))

    def rows_text(self, rows: Sequence[Sequence[object]]) -> str:
        """The texts of ``rows`` joined by newlines: a chunk's ``string_agg``.

        >>> RowRenderer([TargetColumn("id", "integer")]).rows_text([(1,), (2,)])
        '1\\n2'
        """
        return "\n".join(self.row_texts(rows))


def column_texts(function: Callable[[object], str], values: Sequence[object]) -> list[str]:
    """One column's texts for a run of rows, NULL included.

    >>> column_texts(str, (1, None, 3))
    ['1', '\\\\N', '3']
    """
    if None in values:
        return [NULL_TEXT if value is None else function(value) for value in values]
    return list(map(function, values))


def md5_hex(text: str) -> str:
    """PostgreSQL's ``md5(text)`` of a string (UTF-8).

    >>> md5_hex("")
    'd41d8cd98f00b204e9800998ecf8427e'
    """
    return hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()  # noqa: S324


def chunk_hash(texts: Sequence[str]) -> str:
    """``md5(string_agg(text, E'\\n' ORDER BY key))`` of a chunk's rows, given in key order.

    >>> chunk_hash(["a", "b"]) == md5_hex("a\\nb")
    True
    """
    return md5_hex("\n".join(texts))


def multiset_hash(row_hashes: Iterable[str]) -> str:
    """``md5`` of the sorted per-row md5s, concatenated: the rows as a multiset.

    >>> multiset_hash(["b", "a"]) == multiset_hash(["a", "b"])
    True
    """
    return md5_hex("".join(sorted(row_hashes)))


# Chunks ---------------------------------------------------------------------------------------


def chunk_range(chunk: int, width: int) -> tuple[int, int]:
    """The key range ``[lo, hi]`` of a chunk: ``floor(key / width) == chunk``.

    >>> chunk_range(0, 10), chunk_range(-1, 10)
    ((0, 9), (-10, -1))
    """
    return chunk * width, chunk * width + width - 1


def sampled_chunks(table: str, chunks: Iterable[int], share: float) -> list[int]:
    """The chunks a sampled run compares: ``ceil(share × n)`` of them (at least one), those whose
    md5 of ``table:chunk`` is lowest, so every run picks the same ones.

    >>> sampled_chunks("users", range(100), 0.05)
    [24, 33, 48, 60, 84]
    """
    chunks = list(chunks)
    if not chunks:
        return []
    count = max(1, math.ceil(share * len(chunks) - 1e-9))
    ranked = sorted(chunks, key=lambda chunk: md5_hex(f"{table}:{chunk}"))
    return sorted(ranked[:count])


def pg_chunk_sql(pair: TablePair, width: int):  # noqa: ANN201 - psycopg.sql.Composed
    """One query per table: per key chunk, the row count and the md5 of the rows' texts in key
    order (``floor`` division, also for negative keys).

    >>> pair = TablePair("T", "public", "id", (TargetColumn("id", "integer"),))
    >>> print(pg_chunk_sql(pair, 10).as_string(None))  # doctest: +ELLIPSIS
    SELECT CASE WHEN "id" < 0 THEN ("id" + 1) / 10 - 1 ELSE "id" / 10 END AS chunk, count(*), ...
    """
    from psycopg import sql

    key = sql.Identifier(pair.key)
    return sql.SQL(
        "SELECT CASE WHEN {k} < 0 THEN ({k} + 1) / {w} - 1 ELSE {k} / {w} END AS chunk, "
        "count(*), md5(string_agg({row}, E'\\n' ORDER BY {k})) FROM {t} GROUP BY 1"
    ).format(
        k=key,
        w=sql.Literal(width),
        row=pg_row_sql(pair.columns),
        t=sql.Identifier(pair.schema, pair.name),
    )


def pg_sampled_chunk_sql(pair: TablePair):  # noqa: ANN201 - psycopg.sql.Composed
    """The chunk hashes of the given key ranges only (index range scans): parameters are the
    arrays of chunks, low keys and high keys.

    >>> pair = TablePair("T", "public", "id", (TargetColumn("id", "integer"),))
    >>> 'WHERE "id" BETWEEN c.lo AND c.hi' in pg_sampled_chunk_sql(pair).as_string(None)
    True
    """
    from psycopg import sql

    key = sql.Identifier(pair.key)
    return sql.SQL(
        "SELECT c.chunk, x.n, x.h FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) "
        "AS c(chunk, lo, hi) CROSS JOIN LATERAL (SELECT count(*) AS n, "
        "md5(string_agg({row}, E'\\n' ORDER BY {k})) AS h FROM {t} "
        "WHERE {k} BETWEEN c.lo AND c.hi) x WHERE x.n > 0"
    ).format(k=key, row=pg_row_sql(pair.columns), t=sql.Identifier(pair.schema, pair.name))


def pg_chunk_ids_sql(pair: TablePair, width: int):  # noqa: ANN201 - psycopg.sql.Composed
    """The distinct chunks of the target's keys (an index-only pass, no row text).

    >>> pair = TablePair("T", "public", "id", (TargetColumn("id", "integer"),))
    >>> print(pg_chunk_ids_sql(pair, 10).as_string(None))
    SELECT DISTINCT CASE WHEN "id" < 0 THEN ("id" + 1) / 10 - 1 ELSE "id" / 10 END FROM "public"."T"
    """
    from psycopg import sql

    key = sql.Identifier(pair.key)
    return sql.SQL(
        "SELECT DISTINCT CASE WHEN {k} < 0 THEN ({k} + 1) / {w} - 1 ELSE {k} / {w} END FROM {t}"
    ).format(k=key, w=sql.Literal(width), t=sql.Identifier(pair.schema, pair.name))


def pg_chunks(pg_conn, pair: TablePair, width: int, sampled: list[int] | None) -> dict:  # noqa: ANN001
    """The target's ``{chunk: (count, md5)}`` (all chunks, or the ``sampled`` ones).

    pg_chunks(pg_conn, pair, 10_000, None)   # {0: (9999, '5d41…'), 1: (10000, '7b8e…')}
    """
    if sampled is None:
        rows = pg_conn.execute(pg_chunk_sql(pair, width)).fetchall()
    else:
        ranges = [chunk_range(chunk, width) for chunk in sampled]
        rows = pg_conn.execute(
            pg_sampled_chunk_sql(pair),
            (sampled, [lo for lo, _ in ranges], [hi for _, hi in ranges]),
        ).fetchall()
    return {chunk: (count, digest) for chunk, count, digest in rows}


def pg_row_hashes(pg_conn, pair: TablePair, lo: int, hi: int) -> dict[int, str]:  # noqa: ANN001
    """``{key: md5(row text)}`` of the target's rows with keys in ``[lo, hi]`` (server-side md5).

    pg_row_hashes(pg_conn, pair, 40, 49)   # {40: '0cc1…', 41: '9f3a…', …}
    """
    from psycopg import sql

    key = sql.Identifier(pair.key)
    query = sql.SQL("SELECT {k}, md5({row}) FROM {t} WHERE {k} BETWEEN %s AND %s").format(
        k=key, row=pg_row_sql(pair.columns), t=sql.Identifier(pair.schema, pair.name)
    )
    return dict(pg_conn.execute(query, (lo, hi)).fetchall())


def pg_count(pg_conn, pair: TablePair) -> int:  # noqa: ANN001
    """The target table's exact row count.

    pg_count(pg_conn, pair)   # 95
    """
    from psycopg import sql

    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(pair.schema, pair.name))
    return pg_conn.execute(query).fetchone()[0]


# The SQLite side --------------------------------------------------------------------------------


def sqlite_ident(name: str) -> str:
    """A SQLite identifier, double-quoted.

    >>> sqlite_ident('My"T')
    '"My""T"'
    """
    return '"' + name.replace('"', '""') + '"'


def sqlite_select(pair: TablePair, where: str = "", order: bool = True, rowid: bool = False) -> str:
    """The SQLite query for a table's columns in the target's order.

    >>> sqlite_select(TablePair("Users", "public", "id", (TargetColumn("id", "integer"),)))
    'SELECT "id" FROM "Users" ORDER BY "id"'
    """
    names = ", ".join(sqlite_ident(column.name) for column in pair.columns)
    text = f"SELECT {'rowid, ' if rowid else ''}{names} FROM {sqlite_ident(pair.name)}"
    if where:
        text += f" WHERE {where}"
    if order and pair.key:
        text += f" ORDER BY {sqlite_ident(pair.key)}"
    return text


def ascending_integers(keys: list, after: int | None) -> bool:
    """Whether ``keys`` are integers, strictly ascending, and above ``after``.

    >>> ascending_integers([1, 2, 5], 0), ascending_integers([1, 1], None)
    (True, False)
    >>> ascending_integers([1, "2"], None), ascending_integers([3, 4], 3)
    (False, False)
    """
    if set(map(type, keys)) != {int}:
        return False
    if after is not None and keys[0] <= after:
        return False
    return all(map(operator.lt, keys, keys[1:]))


class Unordered(Exception):  # noqa: N818 - a signal between two functions, not an error
    """The SQLite keys did not convert to strictly ascending integers in SQLite's order."""


@dataclass
class SourceSide:
    """One table's SQLite side: converted rows rendered as canonical text.

    source = SourceSide(open_snapshot(path), pair, RowConverter(pair.columns),
                        RowRenderer(pair.columns), width=10_000)
    source.chunks(None)   # {0: (9999, '5d41…'), 1: (10000, '7b8e…')}
    """

    conn: sqlite3.Connection
    pair: TablePair
    convert: RowConverter
    render: RowRenderer
    width: int
    rows_read: int = 0
    seconds: float = 0.0

    @property
    def key_index(self) -> int:
        """The key's position in the rows (``pair.columns`` order)."""
        return [column.name for column in self.pair.columns].index(self.pair.key)

    def converted(self, raw: Sequence[object], convert: RowConverter | None = None) -> tuple:
        """A row converted as the copy converts it; a value that does not convert stops the
        verification with the table, the key and the column (the copy refused it too)."""
        try:
            return (convert or self.convert)(raw)
        except BadValue as error:
            raise self.not_converted(error, raw if convert is None else ()) from None

    def not_converted(self, error: BadValue, raw: Sequence[object]) -> HostsideError:
        """The one line for a row that does not convert: key and column, never the value."""
        key = raw[self.key_index] if raw and self.pair.key else None
        where = f"the row with key {key}" if type(key) is int else "a source row"
        return HostsideError(
            f"verification: {self.pair.name}: {where} does not convert (column "
            f"{error.column}: {error.reason}); verify with the copy's lossy setting"
        )

    def ordered_chunks(self, query: str, args: Sequence[object] = ()) -> dict[int, tuple]:
        """``{chunk: (count, md5)}`` from rows streamed in SQLite's key order, in batches;
        ``Unordered`` when the converted keys are not strictly ascending integers."""
        chunks: dict[int, tuple[int, str]] = {}
        key_index, width = self.key_index, self.width
        cursor = self.conn.execute(query, args)
        pending: list[tuple] = []  # the converted rows of the chunk being read
        current, last = None, None
        try:
            while batch := cursor.fetchmany(BATCH_ROWS):
                rows = self.converted_batch(batch)
                self.rows_read += len(rows)
                keys = [row[key_index] for row in rows]
                if not ascending_integers(keys, last):
                    raise Unordered
                last, start = keys[-1], 0
                while start < len(rows):
                    chunk = keys[start] // width
                    if chunk != current:
                        if pending:
                            chunks[current] = (
                                len(pending),
                                md5_hex(self.render.rows_text(pending)),
                            )
                        current, pending = chunk, []
                    end = bisect.bisect_left(keys, (chunk + 1) * width, start)
                    pending += rows[start:end]
                    start = end
        finally:
            cursor.close()
        if pending:
            chunks[current] = (len(pending), md5_hex(self.render.rows_text(pending)))
        return chunks

    def converted_batch(self, batch: list[tuple]) -> list[tuple]:
        """A batch of rows converted; a row that does not convert is named by its key."""
        try:
            return list(map(self.convert, batch))
        except BadValue:
            return [self.converted(raw) for raw in batch]  # raises, naming the row

    def all_rows(self) -> list[tuple]:
        """Every row converted, sorted by key (the fallback for keys SQLite does not order as
        integers; rows whose key is not an integer come last, under ``None``)."""
        rows = [self.converted(raw) for raw in self.conn.execute(sqlite_select(self.pair))]
        index = self.key_index
        rows.sort(
            key=lambda row: (
                type(row[index]) is not int,
                row[index] if type(row[index]) is int else 0,
            )
        )
        self.rows_read += len(rows)
        return rows

    def chunks(self, sampled: list[int] | None) -> dict:
        """``{chunk: (count, md5)}``: all of them, or the ``sampled`` chunks (range queries)."""
        started = time.monotonic()
        try:
            if sampled is None:
                return self.ordered_chunks(sqlite_select(self.pair))
            if not self.keys_stored_as_integers():  # range queries would miss the text keys
                raise Unordered
            result = {}
            key = sqlite_ident(self.pair.key)
            for chunk in sampled:
                result.update(
                    self.ordered_chunks(
                        sqlite_select(self.pair, f"{key} BETWEEN ? AND ?"),
                        chunk_range(chunk, self.width),
                    )
                )
            return result
        except Unordered:
            self.rows_read = 0
            return self.chunks_in_memory(sampled)
        finally:
            self.seconds += time.monotonic() - started

    def chunks_in_memory(self, sampled: list[int] | None) -> dict:
        """``chunks`` from every row read, converted and sorted here: the fallback for keys that
        SQLite does not keep as ascending integers (held in memory)."""
        grouped: dict[int | None, list[str]] = {}
        index = self.key_index
        for row in self.all_rows():
            key = row[index]
            chunk = key // self.width if type(key) is int else None
            if sampled is None or chunk in sampled or chunk is None:
                grouped.setdefault(chunk, []).append(self.render(row))
        return {chunk: (len(texts), chunk_hash(texts)) for chunk, texts in grouped.items()}

    def row_hashes(self, lo: int, hi: int) -> dict[int, str]:
        """``{key: md5(row text)}`` of the converted rows with keys in ``[lo, hi]``."""
        index = self.key_index
        rows = (
            self.converted(raw)
            for raw in self.conn.execute(
                sqlite_select(self.pair, f"{sqlite_ident(self.pair.key)} BETWEEN ? AND ?"),
                (lo, hi),
            )
        )
        found = {row[index]: md5_hex(self.render(row)) for row in rows}
        if not self.keys_stored_as_integers():  # SQLite's range query misses text keys
            for row in map(
                self.converted, self.conn.execute(sqlite_select(self.pair, order=False))
            ):
                key = row[index]
                if type(key) is int and lo <= key <= hi and key not in found:
                    found[key] = md5_hex(self.render(row))
        return found

    def located_hashes(self, with_rowid: bool) -> list[tuple[object, str]]:
        """``(rowid, md5(row text))`` of every row (the row's position without a rowid), read
        and rendered in batches, in SQLite's order."""
        started = time.monotonic()
        cursor = self.conn.execute(sqlite_select(self.pair, order=False, rowid=with_rowid))
        located: list[tuple[object, str]] = []
        try:
            while batch := cursor.fetchmany(BATCH_ROWS):
                if with_rowid:
                    places = [raw[0] for raw in batch]
                    batch = [raw[1:] for raw in batch]
                else:
                    places = range(len(located) + 1, len(located) + len(batch) + 1)
                texts = self.render.row_texts(self.converted_batch(batch))
                located += zip(places, map(md5_hex, texts), strict=True)
                self.rows_read = len(located)
        finally:
            cursor.close()
        self.seconds += time.monotonic() - started
        return located

    def keys_stored_as_integers(self) -> bool:
        """Whether SQLite holds every key as an integer (then its range queries find them all).

        source.keys_stored_as_integers()   # True
        """
        key, table = sqlite_ident(self.pair.key), sqlite_ident(self.pair.name)
        query = f"SELECT 1 FROM {table} WHERE typeof({key}) <> 'integer' LIMIT 1"
        return self.conn.execute(query).fetchone() is None

    def count(self) -> int:
        """The SQLite table's row count.

        source.count()   # 95
        """
        table = sqlite_ident(self.pair.name)
        return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def chunk_ids(self) -> set[int | None]:
        """The chunks of the converted keys (a pass over the key column only)."""
        key_column = self.pair.columns[self.key_index]
        convert = RowConverter((key_column,), lossy=self.convert.lossy)
        query = f"SELECT {sqlite_ident(key_column.name)} FROM {sqlite_ident(self.pair.name)}"
        found: set[int | None] = set()
        width = self.width
        for raw in self.conn.execute(query):
            key = self.converted(raw, convert)[0]
            found.add(key // width if type(key) is int else None)
        return found


# One table --------------------------------------------------------------------------------------


@dataclass
class KeyBudget:
    """How many more keys a table's report may still name (``max_keys``)."""

    left: int

    def take(self, keys: Sequence) -> list:
        """The first keys of ``keys`` that still fit.

        >>> budget = KeyBudget(3)
        >>> budget.take([1, 2]), budget.take([5, 6]), budget.take([7])
        ([1, 2], [5], [])
        """
        chosen = list(keys[: max(self.left, 0)])
        self.left -= len(chosen)
        return chosen


def rows_per_s(rows: int, seconds: float) -> int | None:
    """Rows per second, or None when nothing was measured.

    >>> rows_per_s(1000, 0.5), rows_per_s(0, 0.0)
    (2000, None)
    """
    return round(rows / seconds) if seconds > 0 and rows else None


def narrow_chunk(source: SourceSide, pg_conn, chunk: int, budget: KeyBudget) -> dict:  # noqa: ANN001
    """The differing keys of one chunk: per-row md5s of its key range on both sides.

    narrow_chunk(source, pg_conn, 4, KeyBudget(20))
    # {"range": [40, 49], "missing": [], "extra": [], "different": [42], "counts": {…}}
    """
    lo, hi = chunk_range(chunk, source.width)
    ours = source.row_hashes(lo, hi)
    theirs = pg_row_hashes(pg_conn, source.pair, lo, hi)
    missing = sorted(key for key in ours if key not in theirs)
    extra = sorted(key for key in theirs if key not in ours)
    different = sorted(key for key in ours if key in theirs and ours[key] != theirs[key])
    return {
        "range": [lo, hi],
        "missing": budget.take(missing),
        "extra": budget.take(extra),
        "different": budget.take(different),
        "counts": {"missing": len(missing), "extra": len(extra), "different": len(different)},
    }


def side_by_side(
    pg_conn,
    target_work: Callable[[], object],
    source_work: Callable[[], object],  # noqa: ANN001
) -> tuple[tuple[object, float], object]:
    """Run the target's query (``target_work``, on ``pg_conn``) in a thread while the SQLite side
    (``source_work``) runs here; ``((target result, its seconds), source result)``. When the
    source side stops (a bad row, the step interrupted) the query is cancelled, not waited for.

    >>> side_by_side(None, lambda: 1, lambda: 2)[0][0], side_by_side(None, lambda: 1, lambda: 2)[1]
    (1, 2)
    """

    def timed() -> tuple[object, float]:
        started = time.monotonic()
        result = target_work()
        return result, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(timed)
        try:
            ours = source_work()
        except BaseException:
            if pg_conn is not None:
                pg_conn.cancel_safe(timeout=5)
            raise
        return future.result(), ours


def verify_keyed(source: SourceSide, pg_conn, sample: float | None, max_keys: int) -> dict:  # noqa: ANN001
    """Counts and chunk hashes of a table with an integer key, the two sides at once (the
    target's one query in a thread while the SQLite rows stream here).

        verify_keyed(source, pg_conn, sample=None, max_keys=20)["differences"]   # []
    """
    pair, width = source.pair, source.width
    sampled = None
    chunk_total = None
    if sample is not None:
        ids = source.chunk_ids()
        ids |= {row[0] for row in pg_conn.execute(pg_chunk_ids_sql(pair, width))}
        ids.discard(None)
        chunk_total = len(ids)
        sampled = sampled_chunks(pair.name, sorted(ids), sample)
    (theirs, target_seconds), ours = side_by_side(
        pg_conn, lambda: pg_chunks(pg_conn, pair, width, sampled), lambda: source.chunks(sampled)
    )
    budget = KeyBudget(max_keys)
    differences = []
    for chunk in sorted(set(ours) | set(theirs), key=lambda c: (c is None, c or 0)):
        if chunk is None:
            differences.append(unkeyed_difference(ours[None][0]))
        elif ours.get(chunk) != theirs.get(chunk):
            differences.append(narrow_chunk(source, pg_conn, chunk, budget))
    if sample is None:
        source_rows = sum(count for count, _ in ours.values())
        target_rows = sum(count for count, _ in theirs.values())
        chunk_total = len(set(ours) | set(theirs))
    else:
        source_rows, target_rows = source.count(), pg_count(pg_conn, pair)
    return {
        "method": "key chunks",
        "key": pair.key,
        "source_rows": source_rows,
        "target_rows": target_rows,
        "chunks": chunk_total,
        "chunks_compared": len(set(ours) | set(theirs)) if sample is None else len(sampled),
        "differences": differences,
        "source_seconds": source.seconds,
        "target_seconds": target_seconds,
        "rows_compared_source": source.rows_read,
        "rows_compared_target": sum(count for count, _ in theirs.values()),
    }


def unkeyed_difference(count: int) -> dict:
    """Source rows whose key does not convert to an integer cannot be in the target's chunks.

    >>> unkeyed_difference(2)["note"]
    '2 source rows have a key that is not an integer'
    """
    return {
        "range": None,
        "missing": [],
        "extra": [],
        "different": [],
        "counts": {"missing": count, "extra": 0, "different": 0},
        "note": f"{count} source rows have a key that is not an integer",
    }


def verify_multiset(source: SourceSide, pg_conn, max_keys: int) -> dict:  # noqa: ANN001
    """Counts and the multiset of row hashes of a table without an integer key; a mismatch names
    SQLite rowids (missing) and PostgreSQL ctids (extra).

        verify_multiset(source, pg_conn, max_keys=20)["differences"]   # []
    """
    from psycopg import sql

    pair = source.pair
    table = sql.Identifier(pair.schema, pair.name)
    row = pg_row_sql(pair.columns)
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h COLLATE \"C\"), '')) "
        "FROM (SELECT md5({row}) AS h FROM {t}) s"
    ).format(row=row, t=table)
    with_rowid = sqlite_has_rowid(source.conn, pair.name)
    ((target_rows, target_hash), target_seconds), located = side_by_side(
        pg_conn,
        lambda: pg_conn.execute(query).fetchone(),
        lambda: source.located_hashes(with_rowid),
    )
    source_hash = multiset_hash(digest for _, digest in located)
    differences = []
    if (len(located), source_hash) != (target_rows, target_hash):
        differences.append(narrow_multiset(located, pg_conn, pair, with_rowid, KeyBudget(max_keys)))
    return {
        "method": "row hash multiset",
        "key": None,
        "source_rows": len(located),
        "target_rows": target_rows,
        "chunks": 1,
        "chunks_compared": 1,
        "differences": differences,
        "source_seconds": source.seconds,
        "target_seconds": target_seconds,
        "rows_compared_source": len(located),
        "rows_compared_target": target_rows,
    }


def sqlite_has_rowid(conn: sqlite3.Connection, table: str) -> bool:
    """Whether an SQLite table has a rowid (``WITHOUT ROWID`` tables have none).

    >>> conn = sqlite3.connect(":memory:")
    >>> _ = conn.execute("CREATE TABLE t (a TEXT PRIMARY KEY) WITHOUT ROWID")
    >>> sqlite_has_rowid(conn, "t")
    False
    """
    try:
        conn.execute(f"SELECT rowid FROM {sqlite_ident(table)} LIMIT 0")
    except sqlite3.OperationalError:
        return False
    return True


def narrow_multiset(
    located: list,
    pg_conn,
    pair: TablePair,
    with_rowid: bool,
    budget: KeyBudget,  # noqa: ANN001
) -> dict:
    """Rows of one side whose hash the other side lacks (as many times as it lacks it).

    narrow_multiset([(1, "9f3a…"), (2, "0cc1…")], pg_conn, pair, True, KeyBudget(20))
    # {"range": None, "missing": ["rowid 2"], "extra": ["ctid (0,7)"], …}
    """
    from psycopg import sql

    theirs = pg_conn.execute(
        sql.SQL("SELECT ctid::text, md5({row}) FROM {t}").format(
            row=pg_row_sql(pair.columns), t=sql.Identifier(pair.schema, pair.name)
        )
    ).fetchall()
    unmatched = Counter(digest for _, digest in theirs)
    missing = []
    for where, digest in located:
        if unmatched[digest] > 0:
            unmatched[digest] -= 1
        else:
            missing.append(f"rowid {where}" if with_rowid else f"row {where}")
    extra = []
    for ctid, digest in theirs:
        if unmatched[digest] > 0:
            unmatched[digest] -= 1
            extra.append(f"ctid {ctid}")
    return {
        "range": None,
        "missing": budget.take(missing),
        "extra": budget.take(extra),
        "different": [],
        "counts": {"missing": len(missing), "extra": len(extra), "different": 0},
    }


# The tables ---------------------------------------------------------------------------------------


def open_snapshot(path: str) -> sqlite3.Connection:
    """The SQLite file as the copy reads it (``sqlite_types.open_source``: read-only, the same
    text decoding), inside one read transaction: one consistent view even of a live file.

    >>> open_snapshot("/nonexistent.db")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    turnout.hostside.base.HostsideError: cannot read SQLite file /nonexistent.db: ...
    """
    conn = open_source(path)
    conn.isolation_level = None
    conn.execute("BEGIN")
    return conn


def verify_settings(params: dict) -> dict:
    """The checked knobs of a verification.

    >>> verify_settings({"sample": 0.05})["sample"], verify_settings({})["chunk_rows"]
    (0.05, 10000)
    """
    sample = params.get("sample")
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 < sample <= 1:
            raise HostsideError(f"sample {sample!r} must be a share of chunks in (0, 1], or null")
        sample = None if sample == 1 else float(sample)
    chunk_rows = params.get("chunk_rows")
    chunk_rows = DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows
    max_keys = params.get("max_keys")
    max_keys = DEFAULT_MAX_KEYS if max_keys is None else max_keys
    for name, value in (("chunk_rows", chunk_rows), ("max_keys", max_keys)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (name == "chunk_rows"):
            raise HostsideError(f"{name} {value!r} must be a whole number (chunk_rows at least 1)")
    tables = params.get("tables")
    if tables is not None and (
        not isinstance(tables, list) or not all(isinstance(t, str) for t in tables)
    ):
        raise HostsideError("tables must be a list of table names, or null for every table")
    return {
        "sample": sample,
        "chunk_rows": chunk_rows,
        "max_keys": max_keys,
        "tables": tables,
        "lossy": bool(params.get("lossy")),
    }


@dataclass
class VerifyProgress:
    """What the progress line says while a verification runs (``progress_interval_s``).

    >>> VerifyProgress(3).line(1.0) is None
    True
    """

    tables: int
    number: int = 0
    source: "SourceSide | None" = None

    def line(self, seconds: float) -> str | None:
        """``users (2 of 3 tables): 400000 source rows hashed, 12 s``, once a table is running."""
        if self.source is None:
            return None
        return (
            f"{self.source.pair.name} ({self.number} of {self.tables} tables): "
            f"{self.source.rows_read} source rows hashed, {seconds:.0f} s"
        )


def verify_table(
    pair: TablePair,
    sqlite_conn: sqlite3.Connection,
    pg_conn,  # noqa: ANN001
    settings: dict,
    progress: VerifyProgress | None = None,
) -> dict:
    """One table's comparison, in the report's form (keys only, never values).

    verify_table(pair, open_snapshot(path), pg_conn, verify_settings({}))["matched"]   # True
    """
    started = time.monotonic()
    source = SourceSide(
        conn=sqlite_conn,
        pair=pair,
        convert=RowConverter(pair.columns, lossy=settings["lossy"]),
        render=RowRenderer(pair.columns),
        width=settings["chunk_rows"],
    )
    if progress is not None:
        progress.number, progress.source = progress.number + 1, source
    import psycopg

    try:
        if pair.key is not None:
            result = verify_keyed(source, pg_conn, settings["sample"], settings["max_keys"])
        else:
            result = verify_multiset(source, pg_conn, settings["max_keys"])
    except psycopg.Error as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise HostsideError(
            f"verification: {pair.name}: the target's query failed: {first_line}"
        ) from None
    totals = {
        kind: sum(difference["counts"][kind] for difference in result["differences"])
        for kind in ("missing", "extra", "different")
    }
    return {
        "name": pair.name,
        "target": pg_display(pair.schema, pair.name),
        "matched": not result["differences"] and result["source_rows"] == result["target_rows"],
        **result,
        "lossy_conversions": [
            {"column": column, "reason": reason, "count": count}
            for (column, reason), count in sorted(source.convert.lossy_counts.items())
        ],
        "rows_missing": totals["missing"],
        "rows_extra": totals["extra"],
        "rows_different": totals["different"],
        "seconds": round(time.monotonic() - started, 3),
        "rows_per_s_source": rows_per_s(result["rows_compared_source"], result["source_seconds"]),
        "rows_per_s_target": rows_per_s(result["rows_compared_target"], result["target_seconds"]),
    }


def first_keys(table: dict, kind: str, limit: int = 3) -> list:
    """The first keys of one kind named in a table's differences.

    >>> first_keys({"differences": [{"missing": [4]}, {"missing": [9, 10]}]}, "missing", 2)
    [4, 9]
    """
    keys = [key for difference in table["differences"] for key in difference[kind]]
    return keys[:limit]


def table_problem(table: dict) -> str:
    """What is wrong with one table, in a few words with its first keys.

    >>> table_problem({"rows_different": 1, "rows_missing": 0, "rows_extra": 0,
    ...     "differences": [{"different": [42], "missing": [], "extra": []}]})
    '1 row differs (key 42)'
    """
    parts = []
    labels = (
        ("different", "differs", "differ"),
        ("missing", "missing in the target", "missing in the target"),
        ("extra", "extra in the target", "extra in the target"),
    )
    for kind, one, many in labels:
        count = table[f"rows_{kind}"]
        if not count:
            continue
        text = f"{count} row {one}" if count == 1 else f"{count} rows {many}"
        keys = first_keys(table, kind)
        if keys:
            more = ", …" if count > len(keys) else ""
            text += f" ({'key' if count == 1 else 'keys'} {', '.join(map(str, keys))}{more})"
        parts.append(text)
    notes = [d["note"] for d in table["differences"] if d.get("note")]
    if not parts and not notes:
        parts.append(f"{table['source_rows']} source rows, {table['target_rows']} target rows")
    return ", ".join([*parts, *notes])


def failure_line(answer: dict, report_path: str | None) -> str:
    """The one line a failed verification exits with: the first table that differs.

    >>> failure_line({"tables": [{"name": "users", "matched": False, "rows_different": 0,
    ...     "rows_missing": 0, "rows_extra": 0, "source_rows": 3, "target_rows": 2,
    ...     "differences": []}]}, "/e/verify.json")
    'verification failed: users: 3 source rows, 2 target rows; report: /e/verify.json'
    """
    failed = [table for table in answer["tables"] if not table["matched"]]
    line = f"verification failed: {failed[0]['name']}: {table_problem(failed[0])}"
    if len(failed) > 1:
        line += f" (and {len(failed) - 1} more tables differ)"
    return line + (f"; report: {report_path}" if report_path else "")


def summary_text(answer: dict) -> str:
    """The log's lines: one per table, counts and speeds (never values).

    >>> print(summary_text({"tables": [{"name": "users", "matched": True, "source_rows": 9,
    ...     "target_rows": 9, "chunks": 1, "chunks_compared": 1, "seconds": 0.1,
    ...     "rows_per_s_source": 90, "rows_per_s_target": 90}]}))
    users: matched; rows 9/9, chunks 1/1, 0.1 s, rows/s source 90, target 90
    """
    lines = []
    for table in answer["tables"]:
        verdict = "matched" if table["matched"] else f"DIFFERS: {table_problem(table)}"
        lines.append(
            f"{table['name']}: {verdict}; rows {table['source_rows']}/{table['target_rows']}, "
            f"chunks {table['chunks_compared']}/{table['chunks']}, {table['seconds']} s, "
            f"rows/s source {table['rows_per_s_source']}, target {table['rows_per_s_target']}"
        )
    return "\n".join(lines)


def write_report(path: str, answer: dict) -> None:
    """The answer as JSON at ``path`` (0600, atomically); a failed write is one line.

    >>> write_report("/nonexistent/dir/v.json", {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    turnout.hostside.base.HostsideError: cannot write the report /nonexistent/dir/v.json: ...
    """
    try:
        write_json_atomically(path, answer)
    except OSError as error:
        raise HostsideError(
            f"cannot write the report {path}: {error.strerror}; free space there or fix report_path"
        ) from None


def copy_report_finished(path: str | None) -> object:
    """The ``finished`` mark of the copy's report, read before verifying: kept in this report,
    so that a later copy is seen to need a new verification (None without one).

    >>> copy_report_finished(None), copy_report_finished("/nonexistent/copy.json")
    (None, None)
    """
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data.get("finished") if isinstance(data, dict) else None


def action_sqlite_verify(params: dict) -> dict:
    """Verify the copy of the SQLite file ``sqlite_path`` into the database named by ``dsn_env``
    (read on this host): counts, and chunked row hashes computed on both engines; the differing
    keys (up to ``max_keys`` per table) of each differing key range. ``sample`` (e.g. 0.05)
    compares that share of chunks; ``lossy`` converts as the copy did. The answer is also written
    to ``report_path``; a mismatch fails the step with one line naming the first table.

        hostside_command("sqlite_verify", {"sqlite_path": "/srv/app/state/snapshot.db",
            "dsn_env": "DATABASE_URL", "env_file": "/srv/app/.env", "sample": None,
            "report_path": "/srv/evidence/run/outputs/verify.json"})
    """
    settings = verify_settings(params)
    report_path = params.get("report_path")
    if report_path and not os.path.isdir(os.path.dirname(report_path) or "."):
        raise HostsideError(
            f"the directory of report_path {report_path} does not exist; create it or fix "
            "report_path"
        )
    started = time.monotonic()
    copy_finished = copy_report_finished(params.get("copy_report"))
    sqlite_conn = open_snapshot(params["sqlite_path"])
    try:
        pg_conn = pg_connect(params, autocommit=False)
        try:
            pg_conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            pairs = table_pairs(sqlite_conn, pg_conn, settings["tables"])
            progress = VerifyProgress(len(pairs))
            interval = interval_of(params)
            with Ticker("sqlite_verify", interval, progress.line, params.get("log_path")):
                tables = [
                    verify_table(pair, sqlite_conn, pg_conn, settings, progress) for pair in pairs
                ]
        finally:
            pg_conn.rollback()
            pg_conn.close()
    finally:
        sqlite_conn.close()
    answer = {
        "ok": True,
        "matched": all(table["matched"] for table in tables),
        "sample": settings["sample"],
        "chunk_rows": settings["chunk_rows"],
        "lossy": settings["lossy"],
        "sqlite_path": params["sqlite_path"],
        "dsn_env": params["dsn_env"],
        "seconds": round(time.monotonic() - started, 3),
        "copy_report": params.get("copy_report"),
        "copy_finished": copy_finished,
        "tables": tables,
    }
    if report_path:
        write_report(report_path, answer)
    if params.get("log_path"):
        append_log(
            params["log_path"],
            f"turnout verify {params['sqlite_path']} against {params['dsn_env']}",
            summary_text(answer),
            0 if answer["matched"] else 1,
        )
    keep_verified(params.get("verified_path"), answer, report_path)
    if not answer["matched"]:
        raise HostsideError(failure_line(answer, report_path))
    if interval_of(params):
        emit("sqlite_verify", matched_line(answer), params.get("log_path"))
    return answer


def keep_verified(path: str | None, answer: dict, report_path: str | None) -> None:
    """A passed verification leaves the marker ``path`` (what the phases' pre-flight reads
    before the app leaves SQLite: matched, which copy, the report); a failed one removes it.

    >>> keep_verified(None, {"matched": True}, None)  # no marker asked for
    """
    if not path:
        return
    if not answer["matched"]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    write_json_atomically(
        path,
        {
            "matched": True,
            "sample": answer["sample"],
            "copy_finished": answer["copy_finished"],
            "report": report_path,
            "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "rows": sum(table["source_rows"] for table in answer["tables"]),
        },
    )


def matched_line(answer: dict) -> str:
    """The closing line of a passed verification the operator reads.

    >>> matched_line({"sample": None, "seconds": 2.5, "tables": [{"source_rows": 7,
    ...     "chunks": 1, "chunks_compared": 1}, {"source_rows": 3, "chunks": 1,
    ...     "chunks_compared": 1}]})
    'matched: 10 rows in 2 tables, counts and every row hashed on both sides (2.5 s)'
    """
    rows = sum(table["source_rows"] for table in answer["tables"])
    if answer["sample"] is None:
        how = "counts and every row hashed on both sides"
    else:
        compared = sum(table["chunks_compared"] for table in answer["tables"])
        chunks = sum(table["chunks"] for table in answer["tables"])
        how = f"counts, and the rows of {compared} of {chunks} key chunks hashed (a sample)"
    return f"matched: {rows} rows in {len(answer['tables'])} tables, {how} ({answer['seconds']} s)"
