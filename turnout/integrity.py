"""Judging integrity records (pure functions, no host): the constraints of a source against
those of the target after a restore (SPEC C2), and the content records the checks after a
cutover compare the live host with (table digests, the assets manifest).

    from turnout.integrity import compare_constraints, constraint_failures
    report = compare_constraints(dump_answer, catalog_constraints(target_answer))
    failures = constraint_failures(report, "restore the dump again")
"""

from __future__ import annotations

# Kinds compared by name, in report order, with how a line names one.
CONSTRAINT_KINDS = (
    ("primary_keys", "primary key"),
    ("unique_constraints", "unique constraint"),
    ("unique_indexes", "unique index"),
    ("foreign_keys", "foreign key"),
)
# How many names one failure line or plan line shows before "… and N more".
SHOWN_NAMES = 10


def entry_name(key: str, table: str) -> str:
    """The constraint's own name from the ``Constraints`` fact's key (a name used on several
    tables is keyed ``schema.table.name`` there).

    >>> entry_name("public.users.users_pkey", "public.users")
    'users_pkey'
    >>> entry_name("users_pkey", "public.users")
    'users_pkey'
    """
    prefix = f"{table}."
    return key[len(prefix) :] if key.startswith(prefix) else key


def catalog_constraints(found: dict) -> dict[str, list[dict]]:
    """The ``Constraints`` fact's answer in the shape ``DumpConstraints`` answers: per kind a
    sorted list of ``{"name", "table"}``; unique indexes only those that back no constraint (the
    others are their constraint)."""
    shaped: dict[str, list[dict]] = {}
    for kind, _ in CONSTRAINT_KINDS:
        items = []
        for key, value in (found.get(kind) or {}).items():
            if kind == "unique_indexes" and value.get("backs_constraint"):
                continue
            items.append({"name": entry_name(key, value["table"]), "table": value["table"]})
        shaped[kind] = sorted(items, key=lambda item: (item["table"], item["name"]))
    return shaped


def describe(kind: str, item: dict) -> str:
    """``unique constraint users_email_key on public.users``."""
    label = dict(CONSTRAINT_KINDS)[kind]
    return f"{label} {item['name']} on {item['table']}"


def _keys(found: dict) -> dict[tuple[str, str, str], dict]:
    return {
        (kind, item["table"], item["name"]): item
        for kind, _ in CONSTRAINT_KINDS
        for item in found.get(kind) or ()
    }


def compare_constraints(source: dict, target: dict) -> dict:
    """What of ``source``'s constraints the target lacks (``missing``) and what the target has
    besides (``added``: a migration's new constraints, or the target's own), each a list of
    ``{"kind", "name", "table"}``; both sides in the ``DumpConstraints`` shape.

    >>> compare_constraints({"unique_constraints": [{"name": "u", "table": "public.t"}]},
    ...                     {"unique_constraints": []})["missing"]
    [{'kind': 'unique_constraints', 'name': 'u', 'table': 'public.t'}]
    """
    theirs, ours = _keys(source), _keys(target)
    missing = [
        {"kind": kind, "name": name, "table": table}
        for (kind, table, name) in sorted(set(theirs) - set(ours))
    ]
    added = [
        {"kind": kind, "name": name, "table": table}
        for (kind, table, name) in sorted(set(ours) - set(theirs))
    ]
    return {
        "missing": missing,
        "added": added,
        "matched": len(set(theirs) & set(ours)),
        "source_counts": {kind: len(source.get(kind) or ()) for kind, _ in CONSTRAINT_KINDS},
        "target_counts": {kind: len(target.get(kind) or ()) for kind, _ in CONSTRAINT_KINDS},
    }


def listed(items: list[dict]) -> str:
    """The first ``SHOWN_NAMES`` items described, and how many more."""
    shown = ", ".join(describe(item["kind"], item) for item in items[:SHOWN_NAMES])
    more = len(items) - SHOWN_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def constraint_failures(report: dict, remedy: str) -> list[str]:
    """One line naming every constraint of the source missing on the target, and ``remedy``
    (the way forward); none when nothing is missing."""
    missing = report["missing"]
    if not missing:
        return []
    return [
        f"{len(missing)} constraint(s) of the source missing on the target: {listed(missing)}; "
        f"{remedy}"
    ]


def constraint_summary(found: dict) -> str:
    """``2 primary keys (users_pkey, meters_pkey), 1 unique constraint (users_email_key),
    0 unique indexes, 1 foreign key (meters_user_id_fkey)``: the plan's concrete description."""
    parts = []
    for kind, label in CONSTRAINT_KINDS:
        items = found.get(kind) or []
        noun = label if len(items) == 1 else label.replace("index", "indexe") + "s"
        names = ", ".join(item["name"] for item in items[:SHOWN_NAMES])
        more = f" and {len(items) - SHOWN_NAMES} more" if len(items) > SHOWN_NAMES else ""
        parts.append(f"{len(items)} {noun}" + (f" ({names}{more})" if items else ""))
    return ", ".join(parts)


# Content records after a cutover ----------------------------------------------------------------


def digest_differences(recorded: dict, live: dict, unchecked: set[str]) -> list[str]:
    """One line per table whose live digest is not the recorded one (or that is gone), tables
    in ``unchecked`` left out: ``public.users: 2 rows, content differs from the cutover's
    digest``."""
    problems = []
    for table, entry in sorted(recorded.items()):
        if table in unchecked:
            continue
        now = live.get(table)
        if now is None:
            problems.append(f"{table}: gone since the cutover")
        elif now != entry["digest"]:
            rows_then, rows_now = entry["digest"].split(":")[0], now.split(":")[0]
            detail = (
                f"{rows_then} rows then, {rows_now} now"
                if rows_then != rows_now
                else f"{rows_now} rows, content differs"
            )
            problems.append(f"{table}: {detail} (digest {entry['digest']} recorded, {now} live)")
    return problems


def manifest_differences(recorded: dict, live: dict) -> list[str]:
    """Files of the manifest missing from the live tree or with another content (by sha256),
    and files the live tree holds besides: one line each, the first ``SHOWN_NAMES`` of each."""
    missing = sorted(set(recorded) - set(live))
    changed = sorted(
        path
        for path in set(recorded) & set(live)
        if recorded[path]["sha256"] != live[path]["sha256"]
        or recorded[path]["size"] != live[path]["size"]
    )
    extra = sorted(set(live) - set(recorded))
    problems = []
    for what, paths in (
        ("missing", missing),
        ("with other content than the tarball's", changed),
        ("not in the tarball", extra),
    ):
        if paths:
            shown = ", ".join(paths[:SHOWN_NAMES])
            more = f" and {len(paths) - SHOWN_NAMES} more" if len(paths) > SHOWN_NAMES else ""
            problems.append(f"{len(paths)} file(s) {what}: {shown}{more}")
    return problems
