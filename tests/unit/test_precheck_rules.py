"""Schema release checks (S2.4, S2.10): the settings syntax, the verdicts and report rows, and
the SQL they send (names only as identifiers, values only as parameters)."""

import pytest
from psycopg import sql

from turnout.hostside.checks import (
    delete_sql,
    describe_check,
    first_failure,
    groups_sql,
    judge_check,
    keep_split,
    min_rows_sql,
    parse_check,
    parse_gate,
    render_table,
    unique_counts_sql,
)
from turnout.settings import DEFAULTS, SettingsError, load_settings

EVIL = 'users"; DROP TABLE users; --'


def test_parse_each_kind():
    unique = parse_check("meter_slots_unique=unique:meters(unit_id, kind, slot)")
    assert unique["name"] == "meter_slots_unique"
    assert unique["table"] == "meters"
    assert [c["column"] for c in unique["columns"]] == ["unit_id", "kind", "slot"]
    admin = parse_check("active_admin=min_rows:users(role='admin', is_active=1)>=2")
    assert admin["where"] == [["role", "admin"], ["is_active", "1"]] and admin["min"] == 2
    emails = parse_check("duplicates:public.users(lower(email))")
    assert emails["columns"] == [{"column": "email", "lower": True}]
    assert emails["name"] == "duplicates_public_users_email"
    assert parse_check("min_rows:users")["min"] == 1
    # a value is data, bound as a parameter: SQL in it stays a string
    assert parse_check("min_rows:users(role = 'a' OR 1=1)")["where"] == [["role", "'a' OR 1=1"]]
    assert parse_check('unique:public."PlayCount"(id)')["table"] == 'public."PlayCount"'


@pytest.mark.parametrize(
    "text",
    [
        "unique:users",  # no columns
        "nope:users(email)",  # unknown kind
        "unique:users(email)>=1",  # >= only for min_rows
        f"unique:{EVIL}(email)",
        "unique:users(email; drop table users)",
        "unique:users(upper(email))",
        "min_rows:users(role)",  # a condition needs a value
        "Bad Name=unique:users(email)",
        "",
    ],
)
def test_parse_refuses(text):
    with pytest.raises(ValueError):
        parse_check(text)


def test_gate_syntax():
    gate = parse_gate("uq_meter_unit_kind_slot=meters(unit_id, kind, slot)")
    assert gate == {
        "constraint": "uq_meter_unit_kind_slot",
        "table": "meters",
        "columns": ["unit_id", "kind", "slot"],
    }
    for bad in ("meters(unit_id)", "uq=meters()", "uq x=meters(a)", "uq=meters(lower(a))"):
        with pytest.raises(ValueError):
            parse_gate(bad)


def test_settings_defaults_and_validation():
    settings = load_settings({})
    assert settings.prechecks == DEFAULTS["prechecks"]
    assert [parse_check(c)["kind"] for c in settings.prechecks] == [
        "unique",
        "min_rows",
        "duplicates",
    ]
    assert parse_gate(settings.unique_gate)["constraint"] == "uq_meter_unit_kind_slot"
    assert settings.dedupe_keep == "lowest" and settings.precheck_limit == 20
    # --data gives one string: commas inside parentheses stay in their check
    given = load_settings({"prechecks": "a=unique:users(email, role),b=min_rows:users>=1"})
    assert given.prechecks == ("a=unique:users(email, role)", "b=min_rows:users>=1")
    with pytest.raises(SettingsError, match="setting prechecks must be"):
        load_settings({"prechecks": f"unique:{EVIL}(x)"})
    with pytest.raises(SettingsError, match="distinct names"):
        load_settings({"prechecks": ("a=unique:users(email)", "a=min_rows:users")})
    with pytest.raises(SettingsError, match="setting unique_gate must be"):
        load_settings({"unique_gate": "meters(unit_id)"})
    with pytest.raises(SettingsError, match="setting dedupe_keep must be"):
        load_settings({"dedupe_keep": "newest"})


def test_verdicts_and_rows():
    unique = parse_check("u=unique:meters(unit_id, kind)")
    group = {"values": {"unit_id": 1, "kind": "gas"}, "count": 2, "ids": [3, 9]}
    row = judge_check(unique, {"total": 10, "distinct": 9, "groups": [group]})
    assert row["passed"] is False and row["result"] == "count 10, distinct 9"
    assert row["offending"] == [group]
    assert judge_check(unique, {"total": 9, "distinct": 9, "groups": []})["passed"] is True
    admin = parse_check("active_admin=min_rows:users(role=admin, is_active=true)>=1")
    assert judge_check(admin, {"count": 0})["passed"] is False
    assert judge_check(admin, {"count": 1})["result"] == "1 row(s)"
    emails = parse_check("emails=duplicates:users(lower(email))")
    failing = judge_check(
        emails,
        {"groups_count": 1, "groups": [{"values": {"lower(email)": "a@x"}, "count": 2}]},
    )
    assert describe_check(emails) == "users(lower(email)): no duplicate groups"
    line = first_failure([judge_check(admin, {"count": 1}), failing])
    assert line.startswith("pre-check emails failed (users(lower(email)): no duplicate groups")
    assert "lower(email)='a@x' ×2" in line
    assert first_failure([judge_check(admin, {"count": 1})]) is None
    table = render_table([judge_check(admin, {"count": 1}), failing])
    assert table.splitlines()[0].split() == ["check", "expectation", "result", "verdict"]
    assert table.splitlines()[2].endswith("FAIL")


def test_keep_rule():
    assert keep_split([9, 3, 7], "lowest") == (3, [7, 9])
    assert keep_split([9, 3, 7], "highest") == (9, [3, 7])
    with pytest.raises(ValueError):
        keep_split([1, 2], "newest")


def _identifiers(composed) -> list:
    """Every sql.Identifier inside a composed query (its strings are the names)."""
    found = []
    for part in composed._obj if isinstance(composed, sql.Composed) else [composed]:
        if isinstance(part, sql.Identifier):
            found.append(part._obj)
        elif isinstance(part, sql.Composed):
            found += _identifiers(part)
    return found


def _literals(composed) -> str:
    """The fixed SQL text of a composed query (names and values left out)."""
    out = []
    for part in composed._obj if isinstance(composed, sql.Composed) else [composed]:
        if isinstance(part, sql.SQL):
            out.append(part._obj)
        elif isinstance(part, sql.Composed):
            out.append(_literals(part))
    return " ".join(out)


def test_sql_names_are_identifiers_only():
    columns = [{"column": 'we"ird', "lower": False}, {"column": "email", "lower": True}]
    for query in (
        unique_counts_sql("odd schema", EVIL, columns),
        groups_sql("odd schema", EVIL, columns, "id", True),
        min_rows_sql("odd schema", EVIL, [["role", "x' OR '1'='1"]]),
        delete_sql("odd schema", EVIL, "id"),
    ):
        assert ("odd schema", EVIL) in _identifiers(query)
        text = _literals(query)
        assert EVIL not in text and 'we"ird' not in text and "OR '1'" not in text
    where = min_rows_sql("public", "users", [["role", "admin"], ["is_active", "true"]])
    assert "%s" in _literals(where) and "admin" not in _literals(where)
    assert ("role",) in _identifiers(where)
    assert "lower(" in _literals(groups_sql("public", "users", columns, "id", False))
    assert "LIMIT %s" in _literals(groups_sql("public", "users", columns, None, True))
