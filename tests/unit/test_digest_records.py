"""The content records of a cutover: the digest query, the tarball manifest (a real tarball),
what the checks after the cutover call a difference, and the setting of unchecked tables."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from turnout.hostside.integrity import DIGEST_SQL, digest_query, table_key, tarball_files
from turnout.integrity import digest_differences, manifest_differences
from turnout.settings import SettingsError, load_settings


def test_the_digest_query_quotes_names_and_sums_on_the_server() -> None:
    text = digest_query("Odd Schema", 'we"ird').as_string()
    assert 'FROM "Odd Schema"."we""ird" AS turnout_row' in text
    assert "sum(" in DIGEST_SQL and "md5(turnout_row::text)" in DIGEST_SQL  # no row leaves


def test_table_keys_follow_sql_names() -> None:
    assert table_key("Sessions") == "public.sessions"
    assert table_key('public."PlayCount"') == 'public."PlayCount"'
    assert table_key("audit.Events") == "audit.events"


def test_the_manifest_hashes_each_file_as_extracted(tmp_path: Path) -> None:
    tarball = tmp_path / "assets.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, data in (("ugc/1/a.bin", b"abc"), ("./docs/b.txt", b""), ("ugc/1/a.bin", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("ugc")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    assert tarball_files(str(tarball)) == {
        "docs/b.txt": {"sha256": hashlib.sha256(b"").hexdigest(), "size": 0},
        "ugc/1/a.bin": {"sha256": hashlib.sha256(b"x").hexdigest(), "size": 1},  # the last wins
    }


def entry(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_zeros_of_the_same_size_and_a_same_size_stand_in_are_differences() -> None:
    recorded = {"a.bin": entry(b"abcd"), "b.bin": entry(b"wxyz")}
    assert manifest_differences(recorded, dict(recorded)) == []
    zeroed = {**recorded, "a.bin": entry(bytes(4))}
    assert manifest_differences(recorded, zeroed) == [
        "1 file(s) with other content than the tarball's: a.bin"
    ]
    replaced = {"a.bin": recorded["a.bin"], "c.bin": recorded["b.bin"]}
    assert manifest_differences(recorded, replaced) == [
        "1 file(s) missing: b.bin",
        "1 file(s) not in the tarball: c.bin",
    ]


def test_a_changed_value_with_the_same_count_is_a_difference() -> None:
    recorded = {
        "public.meters": {"rows": 3, "digest": "3:100"},
        "public.sessions": {"rows": 1, "digest": "1:5"},
    }
    assert (
        digest_differences(recorded, {"public.meters": "3:100", "public.sessions": "1:5"}, set())
        == []
    )
    problems = digest_differences(
        recorded, {"public.meters": "3:101", "public.sessions": "2:9"}, {"public.sessions"}
    )
    assert problems == [
        "public.meters: 3 rows, content differs (digest 3:100 recorded, 3:101 live)"
    ]
    assert digest_differences(recorded, {}, {"public.sessions"}) == [
        "public.meters: gone since the cutover"
    ]


def test_unchecked_tables_setting() -> None:
    assert load_settings({}).cutover_unchecked_tables == ()
    assert load_settings({"cutover_unchecked_tables": ""}).cutover_unchecked_tables == ()
    assert load_settings(
        {"cutover_unchecked_tables": 'public.sessions,"Odd".T'}
    ).cutover_unchecked_tables == ("public.sessions", '"Odd".T')
    with pytest.raises(SettingsError, match="cutover_unchecked_tables"):
        load_settings({"cutover_unchecked_tables": "a.b.c.d"})
