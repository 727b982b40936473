"""Settings that must be sayable: ``unique_gate`` turned off (None, empty, ``none``, ``null``),
and ``orphan_relations`` with SQL-quoted names, parsed by the same name parser as the
pre-checks' tables (one concept, one place)."""

import pytest

from turnout.hostside.base import HostsideError
from turnout.hostside.checks import parse_check, parse_table
from turnout.hostside.pg import pg_parse_relation
from turnout.settings import DEFAULTS, SettingsError, load_settings


@pytest.mark.parametrize("off", [None, "", "  ", "none", "None", "NULL", "null"])
def test_unique_gate_can_be_turned_off(off: object) -> None:
    assert load_settings({"unique_gate": off}).unique_gate is None


def test_unique_gate_is_on_by_default_and_still_refuses_nonsense() -> None:
    assert load_settings({}).unique_gate == DEFAULTS["unique_gate"]
    assert load_settings({"unique_gate": "uq=meters(a, b)"}).unique_gate == "uq=meters(a, b)"
    for bad in ("nope", "uq=meters()", 0, False):
        with pytest.raises(SettingsError, match="setting unique_gate must be constraint_name="):
            load_settings({"unique_gate": bad})


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("meters.unit_id->units.id", "meters.unit_id->units.id"),
        (" meters.unit_id -> units.id ", "meters.unit_id->units.id"),
        ('"user".id->orgs.id', '"user".id->orgs.id'),
        ('"Sessions"."User Id"->"user".id', '"Sessions"."User Id"->"user".id'),
        ('public."user".org_id->public."Org".id', 'public."user".org_id->public."Org".id'),
        ('"a,b".x->y.id', '"a,b".x->y.id'),  # a comma inside quotes is part of the name
    ],
)
def test_orphan_relations_take_quoted_names(written: str, kept: str) -> None:
    assert load_settings({"orphan_relations": written}).orphan_relations == (kept,)
    assert load_settings({"orphan_relations": [written]}).orphan_relations == (kept,)


def test_a_list_of_relations_splits_outside_quotes() -> None:
    settings = load_settings({"orphan_relations": '"a,b".x->y.id, m.u->u.id'})
    assert settings.orphan_relations == ('"a,b".x->y.id', "m.u->u.id")


@pytest.mark.parametrize(
    "bad",
    [
        "meters",
        "meters.unit_id",
        "meters->units",
        "a b.c->d.e",
        '"unterminated.id->u.id',
        "a.b.c.d->u.id",
        'x."".y->u.id',
    ],
)
def test_malformed_relations_are_refused_in_one_line(bad: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({"orphan_relations": bad})
    assert str(refused.value).startswith("setting orphan_relations must be a list like ")
    assert 'SQL quoting for other names: "user".id->orgs.id' in str(refused.value)


def test_relations_and_prechecks_name_tables_alike() -> None:
    """The same table text means the same table on both (the one parser)."""
    for table in ('"user"', 'public."user"', "meters", 'public."Play Count"'):
        relation = pg_parse_relation(f"{table}.id->units.id")
        check = parse_check(f"unique:{table}(id)")
        qualified = check["table"] if "." in parse_table(table) else f"public.{check['table']}"
        assert relation["child"] == qualified, table
    check = pg_parse_relation('"Sessions"."User Id"->"user".id')
    assert (check["child"], check["columns"]) == ('public."Sessions"', ["User Id"])
    assert (check["parent"], check["parent_columns"]) == ('public."user"', ["id"])
    for bad in ("user id->u.id", '"x".->u.id', 'x"y".id->u.id'):
        with pytest.raises(HostsideError):
            pg_parse_relation(bad)
    for bad in ("user id", 'x"y"'):  # the same table texts, refused by the pre-checks too
        with pytest.raises(ValueError):
            parse_check(f"unique:{bad}(id)")
