"""Rewriting keys of a server-side .env (turnout/hostside/envedit.py): only those values change,
the rest stays byte for byte, what is written reads back with compose's rules, nothing secret is
shown, the file is replaced atomically with its mode."""

import os
import stat
from pathlib import Path

import pytest

from turnout.hostside import envedit
from turnout.hostside.base import HostsideError
from turnout.hostside.envfile import parse_env

PASSWORD = "p@ss:w/rd %#'\" x"
URL_PASSWORD = "p%40ss%3Aw%2Frd%20%25%23%27%22%20x"
BASE = (
    "# the app\n"
    "APP_PORT=8000\n"
    f'PG_DATABASE_URL="postgresql+psycopg://app:{URL_PASSWORD}@db:5432/app"\n'
    "export DATABASE_URL='sqlite:////app/.data/app.sqlite3'   # primary\n"
    "\n"
    "DB_WRITE_MODE=single # the seed's modes\n"
    'POSTGRES_PASSWORD="p@ss:w/rd %#\'\\" x"\n'
)
SHADOW = {
    "DATABASE_URL": "${PG_DATABASE_URL}",
    "DATABASE_URL_SECONDARY": "sqlite:////app/.data/app.sqlite3",
    "DB_WRITE_MODE": "single",
    "DB_READ_MODE": "shadow_compare",
}


def read(text: str) -> dict[str, str]:
    return parse_env(text, lookup=lambda name: None)


def test_only_the_values_change_and_compose_reads_them_back() -> None:
    new, changed, notes = envedit.rewrite_text(BASE, SHADOW)
    assert changed == ["DATABASE_URL", "DATABASE_URL_SECONDARY", "DB_READ_MODE"]
    assert notes == []
    assert new == BASE.replace(
        "export DATABASE_URL='sqlite:////app/.data/app.sqlite3'",
        'export DATABASE_URL="${PG_DATABASE_URL}"',
    ) + "DATABASE_URL_SECONDARY=\"sqlite:////app/.data/app.sqlite3\"\nDB_READ_MODE=\"shadow_compare\"\n"
    values = read(new)
    assert values["DATABASE_URL"] == f"postgresql+psycopg://app:{URL_PASSWORD}@db:5432/app"
    assert values["POSTGRES_PASSWORD"] == PASSWORD
    assert values["DB_WRITE_MODE"] == "single"


def test_a_second_rewrite_changes_nothing() -> None:
    new, _, _ = envedit.rewrite_text(BASE, SHADOW)
    again, changed, _ = envedit.rewrite_text(new, SHADOW)
    assert again == new and changed == []


def test_the_quoting_style_of_the_line_is_kept_when_exact() -> None:
    text = "A='x'\nB=\"y\"\nC=z # note\n"
    new, _, _ = envedit.rewrite_text(text, {"A": "dual", "B": "dual", "C": "dual"})
    assert new == "A='dual'\nB=\"dual\"\nC=dual # note\n"


@pytest.mark.parametrize(
    "template, expected",
    [
        ("with space", "with space"),
        ('quote " and \\ back', 'quote " and \\ back'),
        ("dollar $$HOME", "dollar $HOME"),
        ("hash # not a comment", "hash # not a comment"),
        ("it's", "it's"),
        ("", ""),
    ],
)
def test_values_read_back_exactly(template: str, expected: str) -> None:
    for start in ("K=old\n", "K='old'\n", 'K="old"\n'):
        new, _, _ = envedit.rewrite_text(start, {"K": template})
        assert read(new)["K"] == expected, (start, new)


def test_a_reference_defined_below_moves_the_key_after_it() -> None:
    text = 'DATABASE_URL="sqlite:////d.db"\nOTHER=1\nPG_DATABASE_URL="postgresql://a@h/d"\n'
    new, changed, notes = envedit.rewrite_text(text, {"DATABASE_URL": "${PG_DATABASE_URL}"})
    assert new == 'OTHER=1\nPG_DATABASE_URL="postgresql://a@h/d"\nDATABASE_URL="${PG_DATABASE_URL}"\n'
    assert read(new)["DATABASE_URL"] == "postgresql://a@h/d"
    assert changed == ["DATABASE_URL"] and "moved to the end" in notes[0]


def test_a_missing_or_empty_reference_is_refused() -> None:
    with pytest.raises(HostsideError, match="does not define PG_DATABASE_URL, which DATABASE_URL"):
        envedit.rewrite_text("A=1\n", {"DATABASE_URL": "${PG_DATABASE_URL}"})
    with pytest.raises(HostsideError, match="PG_DATABASE_URL is empty"):
        envedit.rewrite_text("PG_DATABASE_URL=\n", {"DATABASE_URL": "${PG_DATABASE_URL}"})


def test_a_key_that_others_refer_to_is_refused() -> None:
    text = "DB_WRITE_MODE=single\nLABEL=${DB_WRITE_MODE}-x\n"
    with pytest.raises(HostsideError, match="LABEL .* would change"):
        envedit.rewrite_text(text, {"DB_WRITE_MODE": "dual"})


def test_duplicate_keys_are_all_rewritten() -> None:
    text = "DB_READ_MODE=primary\nX=1\nDB_READ_MODE=primary\n"
    new, changed, notes = envedit.rewrite_text(text, {"DB_READ_MODE": "shadow_compare"})
    assert new == "DB_READ_MODE=shadow_compare\nX=1\nDB_READ_MODE=shadow_compare\n"
    assert changed == ["DB_READ_MODE"] and "defined 2 times" in notes[0]


def test_missing_keys_are_appended_and_empty_ones_left_out() -> None:
    new, changed, _ = envedit.rewrite_text("A=1", {"B": "two", "C": ""})
    assert new == 'A=1\nB="two"\n' and changed == ["B"]
    new, changed, _ = envedit.rewrite_text("A=1\nC=x\n", {"C": ""})
    assert new == "A=1\nC=\n" and changed == ["C"]


def test_a_key_without_value_gets_one() -> None:
    new, _, _ = envedit.rewrite_text("export A\nB=1\n", {"A": "x"})
    assert new == "export A=x\nB=1\n"


def test_crlf_lines_keep_their_endings() -> None:
    text = "A=1\r\nDB_WRITE_MODE=single\r\nB=\"q\"\r\n"
    new, _, _ = envedit.rewrite_text(text, {"DB_WRITE_MODE": "dual", "DB_READ_MODE": "primary"})
    assert new == 'A=1\r\nDB_WRITE_MODE=dual\r\nB="q"\r\nDB_READ_MODE="primary"\r\n'
    assert read(new)["DB_WRITE_MODE"] == "dual"


def test_a_multiline_value_of_another_key_is_kept() -> None:
    text = 'CERT="line1\nline2"\nDB_WRITE_MODE=single\n'
    new, _, _ = envedit.rewrite_text(text, {"DB_WRITE_MODE": "dual"})
    assert new == 'CERT="line1\nline2"\nDB_WRITE_MODE=dual\n'


def test_the_plan_and_diff_show_no_secret(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(BASE + "REDIS_URL=redis://:s3cr3t-redis@127.0.0.1:6379/0\n")
    os.chmod(path, 0o640)
    plan = envedit.action_env_phase_plan({"env_file": str(path), "values": SHADOW})
    shown = repr(plan)
    for secret in (PASSWORD, URL_PASSWORD, "s3cr3t-redis", "w/rd %#"):
        assert secret not in shown
    assert "-export DATABASE_URL='sqlite:////app/.data/app.sqlite3'   # primary" in plan["diff"]
    assert '+export DATABASE_URL="${PG_DATABASE_URL}"   # primary' in plan["diff"]
    assert plan["after"]["DATABASE_URL"] == "postgresql+psycopg://app:***@db:5432/app"
    assert plan["mode"] == "0640" and plan["changed_keys"][0] == "DATABASE_URL"


def test_a_literal_dsn_being_replaced_is_redacted_in_the_diff(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        f'PG_DATABASE_URL="postgresql://app:{URL_PASSWORD}@db/app"\n'
        f"DATABASE_URL=postgresql://app:{URL_PASSWORD}@db/app\n"
        "DB_KEYWORDS=\"host=db password='kw secret' dbname=app\"\n"
    )
    plan = envedit.action_env_phase_plan({"env_file": str(path), "values": SHADOW})
    assert "-DATABASE_URL=postgresql://app:***@db/app" in plan["diff"]
    assert URL_PASSWORD not in repr(plan) and "kw secret" not in repr(plan)


def test_rewrite_is_atomic_keeps_mode_and_backs_up(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(BASE)
    os.chmod(path, 0o640)
    backup = tmp_path / "backup.env"
    record = tmp_path / "record.json"
    params = {"env_file": str(path), "values": SHADOW, "backup_path": str(backup),
              "record": str(record)}
    answer = envedit.action_env_rewrite(params)
    assert answer["backup"] == str(backup) and backup.read_text() == BASE
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert read(path.read_text())["DB_READ_MODE"] == "shadow_compare"
    assert URL_PASSWORD not in record.read_text() and PASSWORD not in record.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".env"]
    again = envedit.action_env_rewrite(params)
    assert again["changed_keys"] == [] and again["backup"] is None


def test_an_existing_backup_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("DB_WRITE_MODE=single\n")
    backup = tmp_path / "backup.env"
    backup.write_text("something else\n")
    answer = envedit.action_env_rewrite(
        {"env_file": str(path), "values": {"DB_WRITE_MODE": "dual"}, "backup_path": str(backup)}
    )
    assert answer["backup"] == f"{backup}.1" and backup.read_text() == "something else\n"


def test_an_invalid_file_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\nB='unterminated\n")
    with pytest.raises(HostsideError, match="line 2"):
        envedit.action_env_phase_plan({"env_file": str(path), "values": {"A": "2"}})


def test_the_programs_answer_keeps_the_diff_whole(tmp_path: Path, capsys) -> None:
    """The host program redacts its whole JSON answer once more: the diff's masked values must
    survive it (a bare ``PASSWORD=***`` would take the JSON text after it)."""
    import json

    from turnout.hostside import main

    path = tmp_path / ".env"
    path.write_text(
        'POSTGRES_PASSWORD="pw one two"\n'
        "KW=\"host=db password='kw \\\" secret' dbname=app\"\n"
        "DB_WRITE_MODE=single\n"
        'REFAPP_SECRET="tok-3n"\n'
    )
    params = {"env_file": str(path), "values": {"DB_WRITE_MODE": "dual"}}
    assert main.main(["turnout", "env_phase_plan", json.dumps(params)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["ok"] is True
    assert answer["diff"].splitlines()[3:] == [
        " POSTGRES_PASSWORD=***",
        ' KW="host=db password=*** dbname=app"',
        "-DB_WRITE_MODE=single",
        "+DB_WRITE_MODE=dual",
        " REFAPP_SECRET=***",
    ]
    assert "secret'" not in answer["diff"] and "pw one" not in answer["diff"]
    assert "tok-3n" not in answer["diff"]


def test_a_symlinked_env_file_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.env"
    real.write_text("DB_WRITE_MODE=single\n")
    link = tmp_path / ".env"
    link.symlink_to(real)
    envedit.action_env_rewrite(
        {"env_file": str(link), "values": {"DB_WRITE_MODE": "dual"},
         "backup_path": str(tmp_path / "backup")}
    )
    assert link.is_symlink() and real.read_text() == "DB_WRITE_MODE=dual\n"
