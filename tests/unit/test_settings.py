"""turnout.settings: documented defaults, host data, validation (C3, RELIABILITY 29)."""

import dataclasses
import runpy
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from pyinfra.api.host import HostData

from turnout.settings import DEFAULTS, Settings, SettingsError, data_value, load_settings

GROUP_DATA = Path(__file__).resolve().parents[2] / "group_data"
CANARY = "Canary-Pw_9x!@:/%"


def group_data(name: str) -> dict:
    """The names pyinfra takes from a group_data file (it skips only dunder names)."""
    attrs = runpy.run_path(str(GROUP_DATA / f"{name}.py"))
    return {key: value for key, value in attrs.items() if not key.startswith("__")}


# --- defaults -----------------------------------------------------------------------------


def test_empty_data_gives_the_documented_defaults():
    settings = load_settings({})

    assert settings == Settings()
    assert settings.evidence_root == "/var/lib/turnout/evidence"
    assert settings.count_timeout_ms == 3000
    assert settings.tables is None
    assert settings.asset_path_columns == (
        "knowledge_materials.storage_path",
        "ugc_assets.storage_path",
        "gallery_items.storage_dir",
    )
    assert settings.required_extensions == ("vector",)
    assert settings.i_know_what_im_doing is False


def test_defaults_dict_covers_every_field():
    assert list(DEFAULTS) == [field.name for field in dataclasses.fields(Settings)]
    assert DEFAULTS["base_url"] == "http://127.0.0.1:18080"
    assert DEFAULTS["sample_ratio"] == 0.05


def test_group_data_all_equals_defaults():
    assert group_data("all") == DEFAULTS


def test_group_data_all_loads_cleanly():
    assert load_settings(group_data("all")) == Settings()


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_environment_group_data_only_overrides_known_settings(name):
    overrides = group_data(name)

    assert set(overrides) <= set(DEFAULTS)
    load_settings({**group_data("all"), **overrides})


def test_prod_requires_exact_counts_and_never_drops_schema():
    prod = load_settings({**group_data("all"), **group_data("prod")})

    assert prod.require_exact_counts is True
    assert prod.drop_schema is False


def test_derived_paths_follow_app_root():
    settings = load_settings({"app_root": "/opt/shop"})

    assert settings.env_file_path == "/opt/shop/.env"
    assert settings.compose_file_path == "/opt/shop/docker-compose.yml"


def test_explicit_paths_win_over_app_root():
    settings = load_settings({"env_file": "/etc/shop.env", "compose_file": "/etc/shop.yml"})

    assert settings.env_file_path == "/etc/shop.env"
    assert settings.compose_file_path == "/etc/shop.yml"


def test_settings_are_immutable():
    settings = load_settings({"tables": ["users"]})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.dump_jobs = 3  # type: ignore[misc]
    assert isinstance(settings.tables, tuple)


# --- where data comes from ----------------------------------------------------------------


def test_pyinfra_host_data_with_layers():
    # pyinfra's HostData: override data first, then host data, then group data.
    data = HostData(
        "host1",
        {"dump_jobs": 8},
        {"dump_format": "directory"},
        {**group_data("all"), "dump_jobs": 4, "require_exact_counts": True},
    )

    settings = load_settings(data)

    assert settings.dump_jobs == 8
    assert settings.dump_format == "directory"
    assert settings.require_exact_counts is True
    assert settings.base_url == "http://127.0.0.1:18080"


def test_attribute_objects_work():
    settings = load_settings(SimpleNamespace(batch_size=100, unrelated="ignored"))

    assert settings.batch_size == 100


def test_data_value_reads_mappings_and_attributes():
    assert data_value({"a": 1}, "a") == 1
    assert data_value(SimpleNamespace(a=2), "a") == 2
    assert data_value({}, "a", "fallback") == "fallback"


def test_unrelated_keys_are_ignored():
    assert load_settings({"ssh_user": "deploy", "_sudo": True}) == Settings()


# --- values as --data delivers them -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("public.users,meters", ("public.users", "meters")),
        ("public.users, meters ,", ("public.users", "meters")),
        ("users", ("users",)),
        (["users", "public.meters"], ("users", "public.meters")),
        (("users",), ("users",)),
        ("weird$name", ("weird$name",)),
    ],
)
def test_tables_accept_lists_and_comma_strings(raw, expected):
    assert load_settings({"tables": raw}).tables == expected


def test_list_settings_from_comma_strings():
    settings = load_settings(
        {
            "orphan_relations": "meters.unit_id -> units.id,public.a.b_id->public.b.id",
            "asset_path_columns": "ugc_assets.storage_path",
            "required_extensions": "pg_trgm,citext,uuid-ossp",
        },
    )

    assert settings.orphan_relations == ("meters.unit_id->units.id", "public.a.b_id->public.b.id")
    assert settings.asset_path_columns == ("ugc_assets.storage_path",)
    assert settings.required_extensions == ("pg_trgm", "citext", "uuid-ossp")


def test_empty_lists_are_allowed_where_they_mean_none():
    settings = load_settings({"required_extensions": "", "orphan_relations": []})

    assert settings.required_extensions == ()
    assert settings.orphan_relations == ()


def test_numbers_and_strings_as_the_cli_parses_them():
    # pyinfra's --data turns "20240102" into an int and "10" into an int.
    settings = load_settings(
        {"evidence_timestamp": 20240102, "operator": 4711, "http_timeout_s": 10, "sample_ratio": 1},
    )

    assert settings.evidence_timestamp == "20240102"
    assert settings.operator == "4711"
    assert settings.http_timeout_s == 10.0
    assert settings.sample_ratio == 1.0


def test_valid_non_default_values():
    settings = load_settings(
        {
            "evidence_timestamp": "20240102T030405Z",
            "operator": "alice",
            "compose_project": "shop",
            "docker_bin": "/usr/bin/docker",
            "app_python_cmd": "python -X utf8",
            "base_url": "https://shop.example:8443/",
            "dump_format": "directory",
            "rsync_source": "backup@source:/srv/app/.data/",
            "allowed_row_diff": 0,
            "asset_sample_seed": -3,
            "i_know_what_im_doing": "true",
            "assets_dir": "/srv/app/.data",
        },
    )

    assert settings.base_url == "https://shop.example:8443"
    assert settings.i_know_what_im_doing is True
    assert settings.asset_sample_seed == -3


# --- bad values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("evidence_root", "var/lib/turnout"),
        ("evidence_root", "/"),
        ("evidence_root", "/var/../etc"),
        ("evidence_root", None),
        ("evidence_timestamp", "../x"),
        ("evidence_timestamp", "a/b"),
        ("evidence_timestamp", ".."),
        ("operator", ""),
        ("operator", "alice\nbob"),
        ("app_root", "srv/app"),
        ("env_file", ".env"),
        ("compose_file", 3),
        ("compose_project", "Shop Project"),
        ("docker_bin", "docker compose"),
        ("docker_bin", "--help"),
        ("app_python_cmd", ""),
        ("app_python_cmd", "'unterminated"),
        ("hostside_python", "-c evil"),
        ("base_url", "127.0.0.1:18080"),
        ("base_url", "ftp://host/"),
        ("base_url", "http://"),
        ("base_url", "http://host:notaport/"),
        ("health_path", "api/v1/health"),
        ("http_timeout_s", 0),
        ("http_timeout_s", -1.5),
        ("http_timeout_s", float("inf")),
        ("http_timeout_s", "10"),
        ("http_timeout_s", True),
        ("health_retries", 0),
        ("count_timeout_ms", "abc"),
        ("count_timeout_ms", 3000.0),
        ("count_timeout_ms", True),
        ("allowed_row_diff", -1),
        ("require_exact_counts", "true"),
        ("require_exact_counts", 1),
        ("tables", "users;drop table x"),
        ("tables", ""),
        ("tables", []),
        ("tables", ["users", 3]),
        ("tables", "a.b.c"),
        ("orphan_relations", "meters.unit_id=>units.id"),
        ("orphan_relations", "meters->units.id"),
        ("orphan_relations", 5),
        ("asset_sample_size", 0),
        ("asset_sample_seed", "0"),
        ("asset_prefix", "app/.data"),
        ("asset_path_columns", "storage_path"),
        ("assets_dir", "./data"),
        ("required_extensions", "vector pg_trgm"),
        ("source_dsn_env", "SOURCE-DATABASE-URL"),
        ("target_dsn_env", "postgresql://app@db/appdb"),
        ("dump_format", "tar"),
        ("dump_jobs", 0),
        ("dump_path", "backup.dump"),
        ("drop_schema", "yes"),
        ("rsync_source", "--delete-everything"),
        ("rsync_source", ""),
        ("rsync_delete", None),
        ("migrate_redis", 0),
        ("work_dir", "tmp"),
        ("batch_size", -5),
        ("sample_ratio", 0),
        ("sample_ratio", 1.5),
        ("sample_ratio", "0.05"),
        ("i_know_what_im_doing", "ture"),
        ("i_know_what_im_doing", "True"),
        ("i_know_what_im_doing", 1),
    ],
)
def test_bad_value_is_reported_with_key_value_and_fix(key, value):
    with pytest.raises(SettingsError) as raised:
        load_settings({key: value})

    message = str(raised.value)
    assert message.startswith(f"setting {key} must be ")
    assert f", got {repr(value)[:40]}" in message
    assert f"; set it in group_data/ or with --data {key}=" in message
    assert "\n" not in message


def test_every_setting_is_validated():
    # An object() is not a valid value for any setting.
    bad = object()

    with pytest.raises(SettingsError) as raised:
        load_settings(dict.fromkeys(DEFAULTS, bad))

    lines = str(raised.value).splitlines()
    assert [line.split()[1] for line in lines] == list(DEFAULTS)


def test_message_format_for_count_timeout():
    with pytest.raises(SettingsError) as raised:
        load_settings({"count_timeout_ms": "abc"})

    assert str(raised.value) == (
        "setting count_timeout_ms must be a positive integer, got 'abc'; "
        "set it in group_data/ or with --data count_timeout_ms=3000"
    )


def test_all_problems_are_reported_together():
    with pytest.raises(SettingsError) as raised:
        load_settings(
            HostData(
                "host1",
                {"dump_format": "tar", "batch_size": 0},
                {"base_url": "nope", "tables": "ok_table"},
            ),
        )

    lines = str(raised.value).splitlines()
    assert len(lines) == 3
    assert [line.split()[1] for line in lines] == ["base_url", "dump_format", "batch_size"]


def test_long_values_are_truncated():
    with pytest.raises(SettingsError) as raised:
        load_settings({"operator": "x" * 1000})

    assert "x" * 100 not in str(raised.value)
    assert "…" in str(raised.value)


@pytest.mark.parametrize("password", [quote(CANARY, safe=""), CANARY])
def test_credentials_in_base_url_are_refused_without_echoing_them(password):
    with pytest.raises(SettingsError) as raised:
        load_settings({"base_url": f"http://admin:{password}@127.0.0.1:18080"})

    message = str(raised.value)
    assert message.startswith("setting base_url must be ")
    assert "Canary-Pw" not in message


def test_credentials_in_base_url_are_named_as_the_problem():
    with pytest.raises(SettingsError, match="without credentials"):
        load_settings({"base_url": f"http://admin:{quote(CANARY, safe='')}@127.0.0.1:18080"})


def test_bad_values_mentioning_passwords_are_redacted():
    with pytest.raises(SettingsError) as raised:
        load_settings({"target_dsn_env": f"postgresql://app:{CANARY}@db/appdb"})

    assert "Canary-Pw" not in str(raised.value)
    assert "postgresql://app:***@" in str(raised.value)


def test_settings_error_is_shown_by_pyinfra_without_a_traceback():
    # pyinfra's CLI prints a PyinfraError raised in a deploy file as one message, no traceback.
    from pyinfra.api.exceptions import PyinfraError

    assert issubclass(SettingsError, PyinfraError)
    assert issubclass(SettingsError, ValueError)
