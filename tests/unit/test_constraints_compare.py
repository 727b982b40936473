"""The constraints compared by name (SPEC C2): a dump's post-data SQL read as pg_dump writes it,
the catalog's answer shaped alike, what is missing and added, and the one failure line."""

from turnout.hostside.integrity import post_data_constraints
from turnout.integrity import (
    catalog_constraints,
    compare_constraints,
    constraint_failures,
    constraint_summary,
)

POST_DATA = """--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE ONLY public."PlayCount"
    ADD CONSTRAINT "PlayCount_pkey" PRIMARY KEY (id);

ALTER TABLE public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id, at);

CREATE INDEX ix_meters_unit_id ON public.meters USING btree (unit_id);

CREATE UNIQUE INDEX ix_meter_slot ON public.meters USING btree (unit_id, kind, slot);

ALTER TABLE ONLY public.meters
    ADD CONSTRAINT meters_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);
"""


def test_a_dumps_post_data_gives_each_kind_by_table_and_name() -> None:
    found = post_data_constraints(POST_DATA)
    assert found["primary_keys"] == [
        {"name": "PlayCount_pkey", "table": 'public."PlayCount"'},
        {"name": "events_pkey", "table": "public.events"},
        {"name": "users_pkey", "table": "public.users"},
    ]
    assert found["unique_constraints"] == [{"name": "users_email_key", "table": "public.users"}]
    # a plain index is no constraint; a unique one is
    assert found["unique_indexes"] == [{"name": "ix_meter_slot", "table": "public.meters"}]
    assert found["foreign_keys"] == [{"name": "meters_user_id_fkey", "table": "public.meters"}]


CATALOG = {
    "unique_constraints": {"users_email_key": {"table": "public.users", "columns": ["email"]}},
    "primary_keys": {
        "public.users.id_pkey": {"table": "public.users", "columns": ["id"]},
        "public.meters.id_pkey": {"table": "public.meters", "columns": ["id"]},
    },
    "unique_indexes": {
        "users_email_key": {"table": "public.users", "backs_constraint": True},
        "ix_meter_slot": {"table": "public.meters", "backs_constraint": False},
    },
    "foreign_keys": {"meters_user_id_fkey": {"table": "public.meters"}},
}


def test_the_catalogs_answer_is_shaped_as_the_dumps() -> None:
    shaped = catalog_constraints(CATALOG)
    # a name used on two tables is keyed schema.table.name by the fact: its own name here
    assert shaped["primary_keys"] == [
        {"name": "id_pkey", "table": "public.meters"},
        {"name": "id_pkey", "table": "public.users"},
    ]
    # the index backing a constraint is that constraint, not a unique index of its own
    assert shaped["unique_indexes"] == [{"name": "ix_meter_slot", "table": "public.meters"}]


def test_missing_fails_in_one_line_naming_them_and_added_passes() -> None:
    source = catalog_constraints(CATALOG)
    target = catalog_constraints(
        {
            **CATALOG,
            "foreign_keys": {},
            "unique_constraints": {
                "users_email_key": {"table": "public.users"},
                "uq_meter_unit_kind_slot": {"table": "public.meters"},
            },
            "unique_indexes": {},
        }
    )
    report = compare_constraints(source, target)
    assert report["missing"] == [
        {"kind": "foreign_keys", "name": "meters_user_id_fkey", "table": "public.meters"},
        {"kind": "unique_indexes", "name": "ix_meter_slot", "table": "public.meters"},
    ]
    assert report["added"] == [
        {"kind": "unique_constraints", "name": "uq_meter_unit_kind_slot", "table": "public.meters"}
    ]
    assert report["matched"] == 3
    assert constraint_failures(report, "restore again") == [
        "2 constraint(s) of the source missing on the target: foreign key meters_user_id_fkey "
        "on public.meters, unique index ix_meter_slot on public.meters; restore again"
    ]
    only_added = compare_constraints(
        source, {**target, **source, "unique_constraints": target["unique_constraints"]}
    )
    assert only_added["added"] and constraint_failures(only_added, "x") == []


def test_the_same_on_both_sides_passes() -> None:
    same = post_data_constraints(POST_DATA)
    report = compare_constraints(same, same)
    assert report["missing"] == [] and report["added"] == []
    assert constraint_failures(report, "x") == []


def test_the_plan_names_them() -> None:
    text = constraint_summary(post_data_constraints(POST_DATA))
    assert text == (
        "3 primary keys (PlayCount_pkey, events_pkey, users_pkey), 1 unique constraint "
        "(users_email_key), 1 unique index (ix_meter_slot), 1 foreign key (meters_user_id_fkey)"
    )
    assert constraint_summary({}) == (
        "0 primary keys, 0 unique constraints, 0 unique indexes, 0 foreign keys"
    )
