"""SQLite's loose values → the target PostgreSQL column's type (RELIABILITY 17), and the pairing
of an SQLite file's tables with the target schema's (made by the app's Alembic).

Shared by the copy (``pgload.py``), the unique-conflict precheck (``sqlite_unique.py``) and the
verification (``pgverify.py``), so that all three see the same converted values.

    pairs = table_pairs(sqlite_conn, pg_conn, ["users"])
    convert = RowConverter(pairs[0].columns, lossy=False)
    convert((1, "a@example.test", "yes"))   # (1, 'a@example.test', True)

Converted values are the Python objects psycopg dumps for the column's type: ``int`` (smallint,
integer, bigint), ``bool``, ``float`` (real, double precision), ``decimal.Decimal`` (numeric),
``str`` (text, varchar, char, uuid, and json/jsonb as validated JSON text), ``bytes`` (bytea),
``datetime.datetime`` (aware in UTC for timestamptz, naive for timestamp), ``datetime.date``,
``datetime.time``, or ``None``.

STUB written before the implementation (the API the copy and the verification code against):
the converters below pass values through unchanged.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TargetColumn:
    """One column of a target table, as PostgreSQL's catalog says (``format_type``)."""

    name: str
    pg_type: str  # e.g. 'integer', 'boolean', 'timestamp with time zone', 'character varying(255)'
    nullable: bool = True


@dataclass(frozen=True)
class TablePair:
    """A table in both the SQLite file and the target schema."""

    name: str  # the SQLite table name (the same name in the target)
    schema: str  # the target's schema, usually public
    key: str | None  # the single integer primary key column, else None (copied whole)
    columns: tuple[TargetColumn, ...]  # the columns both sides have, in the target's order


class BadValue(ValueError):
    """A value that cannot convert exactly to its column's type."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"column {column}: {reason}")
        self.column = column
        self.reason = reason


@dataclass
class RowConverter:
    """Converts one SQLite row (values in ``columns`` order) to the target's Python values.

    With ``lossy`` False a value that cannot convert exactly raises ``BadValue``; with ``lossy``
    True it is replaced by the documented lossy form and counted in ``lossy_counts``.
    """

    columns: Sequence[TargetColumn]
    lossy: bool = False
    lossy_counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def __call__(self, row: Sequence[object]) -> tuple:
        return tuple(row)


def table_pairs(sqlite_conn, pg_conn, tables: Sequence[str] | None = None) -> list[TablePair]:  # noqa: ANN001
    """The tables to copy: ``tables``, else every SQLite table but ``alembic_version`` and
    ``sqlite_*``, each found in the target (``HostsideError`` naming a missing one)."""
    raise NotImplementedError
