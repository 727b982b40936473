# ruff: noqa: E501, W291 - R2_SQL and R3_SQL are Alembic's output as rendered
"""turnout/sqlrisk.py (and the pure parts of operations/revisions.py and the host-side checks):
classification of the PostgreSQL SQL Alembic renders offline.

``R2_SQL`` and ``R3_SQL`` are real renderings: tiny revisions written with ``op.*`` calls and
rendered by the venv's Alembic against the PostgreSQL dialect (``alembic upgrade r1:r2 --sql``),
kept here as test data.
"""

import pytest
from psycopg import sql

from turnout.facts.revisions import ANSWER_MARK, PendingSql
from turnout.hostside.base import HostsideError
from turnout.hostside.revisions import narrowing_condition
from turnout.operations.revisions import (
    FAIL,
    OK,
    UNCHECKED,
    judge,
    plan_checks,
    plan_lines,
    renders_nothing,
    simple_cast,
    stop_reason,
)
from turnout.sqlrisk import (
    analyse_revisions,
    classify,
    column_list,
    display_table,
    parse_type,
    split_statements,
)

R2_SQL = """\
BEGIN;

-- Running upgrade r1 -> r2

ALTER TABLE users ALTER COLUMN email SET NOT NULL;

ALTER TABLE "odd schema"."PlayCount" ALTER COLUMN "UserId" SET NOT NULL;

ALTER TABLE users ADD CONSTRAINT uq_users_email UNIQUE (email);

CREATE UNIQUE INDEX ix_pc ON "odd schema"."PlayCount" ("UserId", n);

CREATE INDEX ix_users_email ON users (email);

CREATE INDEX CONCURRENTLY ix_users_email2 ON users (email);

ALTER TABLE "odd schema"."PlayCount" ADD CONSTRAINT fk_pc_user FOREIGN KEY("UserId") REFERENCES public.users (id);

ALTER TABLE users ADD CONSTRAINT ck_len CHECK (length(email) > 3);

ALTER TABLE users ALTER COLUMN email TYPE VARCHAR(100);

ALTER TABLE "odd schema"."PlayCount" ALTER COLUMN "UserId" TYPE INTEGER;

ALTER TABLE "odd schema"."PlayCount" ALTER COLUMN n TYPE NUMERIC(5, 1);

ALTER TABLE users ADD COLUMN token VARCHAR(36) DEFAULT gen_random_uuid() NOT NULL;

ALTER TABLE users ADD COLUMN age INTEGER NOT NULL;

ALTER TABLE users ADD COLUMN flag BOOLEAN DEFAULT false NOT NULL;

ALTER TABLE users ADD COLUMN ts TIMESTAMP WITHOUT TIME ZONE DEFAULT now();

UPDATE users SET email = lower(email) WHERE email LIKE '%;%';

ALTER TABLE users ALTER COLUMN email TYPE INTEGER USING email::integer;

ALTER TABLE users ADD CONSTRAINT uq_multi UNIQUE (email, age);

ALTER TABLE users ADD FOREIGN KEY(age) REFERENCES users (id);

CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;

UPDATE alembic_version SET version_num='r2' WHERE alembic_version.version_num = 'r1';

COMMIT;

"""

R3_SQL = """\
BEGIN;

-- Running upgrade r2 -> r3

CREATE TABLE sales."Orders" (
    id BIGSERIAL NOT NULL, 
    user_id INTEGER NOT NULL, 
    code TEXT, 
    PRIMARY KEY (id)
);

ALTER TABLE sales."Orders" ADD CONSTRAINT fk_orders_user FOREIGN KEY(user_id) REFERENCES users (id);

CREATE UNIQUE INDEX uq_orders_code_live ON sales."Orders" (lower(code)) WHERE code IS NOT NULL;

ALTER TABLE users ADD COLUMN seq INTEGER DEFAULT nextval('users_seq') NOT NULL;

UPDATE users SET email = 'x' WHERE email IS NULL;

ALTER TABLE users ALTER COLUMN email SET NOT NULL;

DO $$ BEGIN PERFORM 1; END $$;

ALTER TABLE "odd schema"."PlayCount" ADD CONSTRAINT "ck_PlayCount_positive" CHECK (n > 0);

ALTER TABLE "odd schema"."PlayCount" ALTER COLUMN n TYPE TEXT;

ALTER TABLE users ALTER COLUMN email TYPE VARCHAR(20) USING left(email, 20);

ALTER TABLE "odd schema"."PlayCount" ADD CONSTRAINT uq_pc_pair UNIQUE ("UserId", n);

ALTER TABLE "odd schema"."PlayCount" ADD CONSTRAINT fk_pc_pair FOREIGN KEY("UserId", n) REFERENCES sales."Orders" (id, code);

UPDATE alembic_version SET version_num='r3' WHERE alembic_version.version_num = 'r2';

COMMIT;

"""


def kinds(sql_text: str) -> list[tuple]:
    return [
        (f["kind"], display_table(f.get("table")), f.get("column"), f.get("context"))
        for f in analyse_revisions([{"revision": "r", "sql": sql_text}])
    ]


def test_split_keeps_dollar_quotes_strings_and_drops_comments() -> None:
    statements = split_statements(R2_SQL)
    assert statements[0] == "BEGIN"
    assert statements[-1] == "COMMIT"
    assert "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql" in statements
    assert "UPDATE users SET email = lower(email) WHERE email LIKE '%;%'" in statements
    assert not any(s.startswith("--") for s in statements)
    assert split_statements("SELECT $tag$ ; $x$ ; $tag$; SELECT 'a'';b'") == [
        "SELECT $tag$ ; $x$ ; $tag$",
        "SELECT 'a'';b'",
    ]
    assert split_statements('ALTER TABLE "a;b" ADD COLUMN x int; /* ; */') == [
        'ALTER TABLE "a;b" ADD COLUMN x int'
    ]


def test_the_data_dependent_and_heavy_statements_of_a_rendered_revision() -> None:
    found = kinds(R2_SQL)
    assert found[:10] == [
        ("not_null", "public.users", "email", None),
        ("not_null", '"odd schema"."PlayCount"', "UserId", None),
        ("unique", "public.users", None, None),
        ("unique", '"odd schema"."PlayCount"', None, None),
        ("blocking_index", '"odd schema"."PlayCount"', None, None),
        ("blocking_index", "public.users", None, None),  # ix_users_email; CONCURRENTLY is not
        ("foreign_key", '"odd schema"."PlayCount"', None, None),
        ("check", "public.users", None, None),
        ("type", "public.users", "email", None),
        ("rewrite", "public.users", "email", None),
    ]
    assert ("volatile_default", "public.users", "token", None) in found
    assert ("add_not_null", "public.users", "age", None) in found
    # a constant default and a stable one (now()) are stored once: not heavy, not data-dependent
    assert not [f for f in found if f[2] in ("flag", "ts") and f[0] != "add_column"]
    # after the UPDATE, the live data says nothing about the table's later statements
    assert ("dml", "public.users", None, None) in found
    after = found[found.index(("dml", "public.users", None, None)) + 1 :]
    assert ("type", "public.users", "email", "after_dml") in after
    assert ("unique", "public.users", None, "after_dml") in after
    assert ("foreign_key", "public.users", None, "after_dml") in after


def test_details_quoted_identifiers_and_schemas() -> None:
    findings = analyse_revisions([{"revision": "r2", "sql": R2_SQL}])
    fk = next(f for f in findings if f["kind"] == "foreign_key")
    assert fk["table"] == ("odd schema", "PlayCount")
    assert fk["columns"] == ["UserId"] and fk["ref_columns"] == ["id"]
    assert fk["ref_table"] == ("public", "users") and fk["constraint"] == "fk_pc_user"
    unique = [f for f in findings if f["kind"] == "unique"]
    assert unique[0]["columns"] == [{"column": "email"}]
    assert unique[1]["columns"] == [{"column": "UserId"}, {"column": "n"}]
    check = next(f for f in findings if f["kind"] == "check")
    assert check["expression"] == "length(email) > 3" and check["constraint"] == "ck_len"
    types = [(f["column"], f["new_type"], f["using"]) for f in findings if f["kind"] == "type"]
    assert types[0][1]["name"] == "varchar" and types[0][1]["length"] == 100
    assert types[1][0] == "UserId" and types[1][1]["name"] == "int4"
    assert types[2][1]["precision"] == 5 and types[2][1]["scale"] == 1
    assert types[3][2] == "email::integer"


def test_a_second_rendering_new_tables_partial_expression_indexes_and_code() -> None:
    findings = analyse_revisions([{"revision": "r3", "sql": R3_SQL}])
    by_kind = [(f["kind"], f.get("context")) for f in findings]
    assert by_kind[0] == ("create_table", None)
    # a foreign key and a unique index on the table a pending statement creates: it is empty
    assert by_kind[1] == ("foreign_key", "new_table")
    assert by_kind[2] == ("unique", "new_table")
    index = findings[2]
    assert index["columns"] == [{"expression": "lower(code)"}]
    assert index["where"] == "code IS NOT NULL"
    assert ("volatile_default", None) in by_kind  # nextval() default
    assert ("not_null", "after_dml") in by_kind  # the backfill UPDATE runs first
    unknown = next(f for f in findings if f["kind"] == "unknown")
    assert unknown["why"].startswith("DO runs code")
    check = next(f for f in findings if f["kind"] == "check")
    assert check["constraint"] == "ck_PlayCount_positive" and check["expression"] == "n > 0"
    using = [f for f in findings if f["kind"] == "type" and f["using"]]
    assert using[0]["using"] == "left(email, 20)"
    pair = [f for f in findings if f["kind"] == "foreign_key"][-1]
    assert pair["columns"] == ["UserId", "n"] and pair["ref_table"] == ("sales", "Orders")


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("CREATE UNIQUE INDEX CONCURRENTLY ix ON t (a)", ["unique"]),
        ("CREATE INDEX ix ON ONLY t USING gin (a)", ["blocking_index"]),
        ("CREATE UNIQUE INDEX ix ON t USING hash (a)", ["unknown", "blocking_index"]),
        ("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id) NOT VALID", []),
        ("ALTER TABLE t ADD CONSTRAINT ck CHECK (a > 0) NOT VALID", []),
        ("ALTER TABLE t VALIDATE CONSTRAINT ck", ["unknown"]),
        ("ALTER TABLE t ADD PRIMARY KEY (a)", ["unique", "not_null"]),
        ("ALTER TABLE t ADD COLUMN n bigserial", ["add_column", "volatile_default"]),
        ("ALTER TABLE t ADD COLUMN n int DEFAULT random()", ["add_column", "volatile_default"]),
        ("ALTER TABLE t ADD COLUMN n int NOT NULL DEFAULT 0", ["add_column"]),
        ("ALTER TABLE t ALTER COLUMN a SET DATA TYPE smallint", ["type", "rewrite"]),
        ("ALTER TABLE t ALTER COLUMN a DROP NOT NULL", []),
        ("ALTER TABLE t ALTER a SET NOT NULL, ALTER b SET NOT NULL", ["not_null", "not_null"]),
        ("UPDATE alembic_version SET version_num='b'", []),
        ("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)", []),
        ("INSERT INTO alembic_version (version_num) VALUES ('a')", []),
        ("DELETE FROM ONLY s.t WHERE x", ["dml"]),
        ("SELECT 1", []),
    ],
)
def test_classify_shapes(statement: str, expected: list[str]) -> None:
    assert [f["kind"] for f in classify(statement)] == expected


def test_nulls_not_distinct_is_kept_for_the_check() -> None:
    constraint = classify("ALTER TABLE t ADD CONSTRAINT u UNIQUE NULLS NOT DISTINCT (a, b)")
    index = classify("CREATE UNIQUE INDEX u ON t (a) NULLS NOT DISTINCT")
    plain = classify("ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)")
    assert constraint[0]["nulls_not_distinct"] and index[0]["nulls_not_distinct"]
    assert not plain[0]["nulls_not_distinct"]
    assert constraint[0]["columns"] == [{"column": "a"}, {"column": "b"}]


def test_names_fold_like_sql() -> None:
    found = classify('ALTER TABLE Public."Odd ""T""" ALTER COLUMN "MiXed" SET NOT NULL')
    assert found[0]["table"] == ("public", 'Odd "T"')
    assert found[0]["column"] == "MiXed"
    assert display_table(found[0]["table"]) == 'public."Odd ""T"""'
    assert classify("ALTER TABLE USERS ALTER COLUMN EMAIL SET NOT NULL")[0]["table"] == (
        None,
        "users",
    )


def test_column_lists_and_types() -> None:
    assert column_list('a, "B c" DESC NULLS LAST, (a + 1), x text_pattern_ops') == [
        {"column": "a"},
        {"column": "B c"},
        {"expression": "(a + 1)"},
        {"column": "x"},
    ]
    assert parse_type("CHARACTER VARYING(12)")["length"] == 12
    assert parse_type("CHAR")["length"] == 1
    assert parse_type("SMALLINT")["name"] == "int2"
    assert parse_type("TIMESTAMP WITHOUT TIME ZONE")["name"] == "timestamp without time zone"


def test_contexts_of_columns_added_by_a_pending_revision() -> None:
    sql_text = (
        "ALTER TABLE t ADD COLUMN a INTEGER;\n"
        "ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 0 NOT NULL;\n"
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL;\n"
        "ALTER TABLE t ADD CONSTRAINT uq UNIQUE (b);\n"
    )
    findings, checks, _ = plan_checks([{"revision": "x", "sql": sql_text}])
    # a column added without a default is NULL on every row: SET NOT NULL needs an empty table
    assert checks == [
        {"id": "x:3", "kind": "add_not_null", "table": ["public", "t"], "column": "a"}
    ]
    unique = next(f for f in findings if f["kind"] == "unique")
    assert unique["verdict"] == UNCHECKED


def test_plan_checks_builds_host_checks_and_tables_to_size() -> None:
    findings, checks, tables = plan_checks([{"revision": "r2", "sql": R2_SQL}])
    assert [c["kind"] for c in checks][:6] == [
        "not_null",
        "not_null",
        "unique",
        "unique",
        "foreign_key",
        "check",
    ]
    assert checks[1]["table"] == ["odd schema", "PlayCount"] and checks[1]["column"] == "UserId"
    assert checks[4]["ref_table"] == ["public", "users"]
    assert ["public", "users"] in tables and ["odd schema", "PlayCount"] in tables
    after = [f for f in findings if f.get("context") == "after_dml"]
    assert after and all(f["verdict"] == UNCHECKED for f in after)


def test_judge_verdicts_lines_and_the_one_stop_line() -> None:
    revisions = [
        {"revision": "a", "message": "ok", "sql": "ALTER TABLE t ADD CONSTRAINT u UNIQUE (x);"},
        {"revision": "b", "message": "bad", "sql": "ALTER TABLE t ALTER COLUMN y SET NOT NULL;"},
        {"revision": "c", "message": "py", "error": "TypeError: 'NoneType' object"},
        {"revision": "d", "message": "empty", "sql": "BEGIN;\nUPDATE alembic_version SET v=1;"},
        {"revision": "e", "message": "idx", "sql": "CREATE INDEX i ON big (x);"},
    ]
    findings, checks, tables = plan_checks(revisions)
    answer = {
        "checks": {
            checks[0]["id"]: {"status": "ok", "count": 0, "detail": "duplicate groups"},
            checks[1]["id"]: {
                "status": "fail",
                "count": 3,
                "found": ["4", "7"],
                "detail": "rows holding NULL",
            },
        },
        "tables": {"public.big": {"exists": True, "total_bytes": 3 << 20, "estimated_rows": 9}},
    }
    judged = judge(revisions, findings, answer, 2)
    assert [e["verdict"] for e in judged] == [OK, FAIL, UNCHECKED, UNCHECKED, OK]
    assert judged[1]["reasons"] == [
        "ALTER TABLE t ALTER COLUMN y SET NOT NULL: 3 rows holding NULL (ids 4, 7, first 2)"
    ]
    lines = plan_lines(judged)
    assert "Revision c (py): UNCHECKED - its SQL cannot be rendered offline" in lines[2]
    assert lines[-1].startswith("  heavy (blocking_index): CREATE INDEX i ON big (x) on public.big")
    assert "3.0 MiB, ~9 rows" in lines[-1]
    line = stop_reason(judged, allow_unchecked=True)
    assert line.startswith("pending revision b (bad) would fail on the live data: ALTER TABLE")
    assert stop_reason([judged[0], judged[4]], allow_unchecked=False) is None
    unchecked = stop_reason([judged[0], judged[2]], allow_unchecked=False)
    assert "is UNCHECKED" in unchecked and "allow_unchecked_revisions=true" in unchecked
    assert stop_reason([judged[2]], allow_unchecked=True) is None


def test_a_missing_table_or_a_timeout_is_unchecked_never_ok() -> None:
    revisions = [{"revision": "a", "message": "m", "sql": "ALTER TABLE t ADD UNIQUE (x);"}]
    findings, checks, _ = plan_checks(revisions)
    for result in (
        {"status": "missing", "detail": "table public.t does not exist"},
        {"status": "error", "detail": "the check took longer than 5000 ms"},
    ):
        judged = judge(revisions, findings, {"checks": {checks[0]["id"]: result}}, 20)
        assert judged[0]["verdict"] == UNCHECKED


def test_renders_nothing_and_simple_casts() -> None:
    assert renders_nothing("BEGIN;\n-- Running upgrade\nCOMMIT;")
    assert not renders_nothing("BEGIN;\nUPDATE t SET a = 1;\nCOMMIT;")
    assert simple_cast(None, "a") and simple_cast("a::INTEGER", "a")
    assert simple_cast("(a)::numeric(5, 1)", "a")
    assert not simple_cast("left(a, 20)", "a")


def test_pending_sql_fact_parses_the_answer_after_its_mark() -> None:
    fact = PendingSql()
    answer = (
        '{"current": ["0002"], "revisions": [{"revision": "0003", "down": "0002", '
        '"message": "m", "sql": "BEGIN;"}]}'
    )
    parsed = fact.process(["INFO  [alembic.runtime] Context impl", ANSWER_MARK + answer])
    assert parsed["ok"] and parsed["revisions"][0]["revision"] == "0003"
    failed = fact.process(["sh: docker: not found", "#failed"])
    assert not failed["ok"] and "docker: not found" in failed["error"]
    command = fact.command(
        env_file="/srv/app/.env", compose_file="/srv/app/c.yml", app_python="uv run python"
    )
    text = command.get_raw_value()
    assert "exec -T api uv run python -c" in text and "sql=True" in text


def narrowing(old: dict, new_type: str) -> str | None:
    condition, _ = narrowing_condition(sql, "c", old, parse_type(new_type))
    return None if condition is None else condition.as_string(None)


def test_narrowing_conditions_against_the_live_type() -> None:
    varchar255 = {"type": "varchar", "typmod": 259, "display": "character varying(255)"}
    assert narrowing(varchar255, "VARCHAR(100)") == 'length("c"::text) > 100'
    assert narrowing(varchar255, "VARCHAR(300)") is None
    assert narrowing(varchar255, "TEXT") is None
    int8 = {"type": "int8", "typmod": -1, "display": "bigint"}
    assert "-2147483648 AND 2147483647" in narrowing(int8, "INTEGER")
    assert narrowing({"type": "int2", "typmod": -1, "display": "smallint"}, "INTEGER") is None
    text = {"type": "text", "typmod": -1, "display": "text"}
    assert "~" in narrowing(text, "INTEGER")
    numeric = {"type": "numeric", "typmod": ((10 << 16) | 2) + 4, "display": "numeric(10,2)"}
    assert ">= 10000" in narrowing(numeric, "NUMERIC(5, 1)")
    assert narrowing(numeric, "NUMERIC(12, 2)") is None
    with pytest.raises(HostsideError):
        narrowing(text, "TIMESTAMP WITHOUT TIME ZONE")
