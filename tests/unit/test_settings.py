"""turnout.settings: declarations, generated defaults, host data, checks (C3, RELIABILITY 29)."""

import ast
import dataclasses
import json
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from pyinfra.api.host import HostData
from pyinfra.api.inventory import Inventory

import turnout.constants
from turnout.settings import (
    DEFAULTS,
    DUMP_FORMATS,
    Settings,
    SettingsError,
    data_keys,
    data_value,
    load_settings,
    pyinfra_data_keys,
    render_group_data,
    setting_info,
    unknown_keys,
)

REPO = Path(__file__).resolve().parents[2]
GROUP_DATA = REPO / "group_data"
CANARY = "Canary-Pw_9x!@:/%"
REMOVED = ("sample_ratio",)
# Removed settings whose successors have a close name: the suggestion names the successor.
RENAMED = {"operator": "operator_name", "app_python_cmd": "app_python"}


def group_data(name: str) -> dict:
    """
    The names pyinfra takes from a group_data file, by its rule (pyinfra_cli/inventory.py, not
    imported here: it monkey-patches the test process with gevent): ``__all__`` if set, else every
    name but dunders and names bound by import statements.
    """
    path = GROUP_DATA / f"{name}.py"
    attrs = runpy.run_path(str(path))
    imported = {
        alias.asname or alias.name.split(".")[0]
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    keys = attrs.get("__all__", [key for key in attrs if key not in imported])
    return {key: attrs[key] for key in keys if not key.startswith("__")}


def cli_value(text: str) -> object:
    """What ``--data key=<text>`` delivers (pyinfra_cli.util.parse_cli_arg, after the shell)."""
    (word,) = shlex.split(text)
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    try:
        return int(word)
    except ValueError:
        pass
    try:
        return json.loads(word)
    except ValueError:
        return word


def cli_host_data(
    groups: dict[str, list], override: dict | None = None, name: str = ""
) -> HostData:
    """
    ``host.data`` of a real pyinfra ``Inventory`` built as the CLI builds it: group_data/all.py as
    global data, each group with its hosts and its group_data file (if any), ``--data`` as override.
    """
    hosts = [
        host if isinstance(host, str) else host[0]
        for members in groups.values()
        for host in members
    ]
    inventory = Inventory(
        (hosts, group_data("all")),
        override_data=override or {},
        **{
            group: (members, group_data(group) if (GROUP_DATA / f"{group}.py").exists() else {})
            for group, members in groups.items()
        },
    )
    return inventory.get_host(name or hosts[0]).data


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
    assert DEFAULTS["dump_jobs"] == 2
    assert DEFAULTS["extra_data_keys"] == ()


def test_settings_nothing_reads_are_gone():
    assert not set(REMOVED) & set(DEFAULTS)
    assert unknown_keys(dict.fromkeys(REMOVED, 1)) == list(REMOVED)


# --- one declaration per setting ------------------------------------------------------------


@pytest.mark.parametrize("field", dataclasses.fields(Settings), ids=lambda field: field.name)
def test_every_setting_is_declared_with_validator_example_doc_and_section(field):
    info = setting_info(field)

    assert callable(info.validate)
    assert info.doc and "\n" not in info.doc and len(f"# {info.doc}") <= 100
    assert info.section
    # The example in "--data key=example" is valid, as the CLI delivers it.
    load_settings({field.name: cli_value(info.example)})


def test_the_default_of_every_setting_is_valid():
    assert load_settings({k: v for k, v in DEFAULTS.items() if v is not None}) == Settings()


def test_each_section_is_declared_in_one_block():
    sections = [setting_info(field).section for field in dataclasses.fields(Settings)]
    blocks = [section for i, section in enumerate(sections) if i == 0 or sections[i - 1] != section]

    assert len(blocks) == len(set(blocks))


def test_dump_formats_are_defined_once_in_constants():
    assert DUMP_FORMATS is turnout.constants.DUMP_FORMATS == ("custom", "directory")
    assert load_settings({"dump_format": "directory"}).dump_format == "directory"
    with pytest.raises(SettingsError, match="must be one of custom, directory"):
        load_settings({"dump_format": "tar"})


def test_constants_imports_nothing_so_it_runs_on_hosts():
    tree = ast.parse((REPO / "turnout" / "constants.py").read_text())

    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


# --- group_data/all.py is generated -------------------------------------------------------


def test_group_data_all_is_generated_from_the_declarations():
    current = (GROUP_DATA / "all.py").read_text()

    assert current == render_group_data(), (
        "group_data/all.py is out of date; regenerate it: "
        "python -m turnout.settings --group-data > group_data/all.py"
    )


def test_rendered_group_data_gives_the_defaults():
    rendered: dict = {}
    exec(compile(render_group_data(), "all.py", "exec"), rendered)  # noqa: S102 - our own text

    assert {k: v for k, v in rendered.items() if not k.startswith("__")} == DEFAULTS


def test_rendered_group_data_documents_each_setting_under_its_section():
    text = render_group_data()

    assert text.startswith('"""\nturnout\'s documented defaults')
    assert "python -m turnout.settings --group-data > group_data/all.py" in text
    assert "# --- evidence (SPEC S0.3) ---\n# Where evidence directories are created" in text
    assert '# pg_dump format: custom or directory.\ndump_format = "custom"\n' in text
    assert 'asset_path_columns = (\n    "knowledge_materials.storage_path",\n' in text
    assert text.endswith("i_know_what_im_doing = False\n")
    assert max(len(line) for line in text.splitlines()) <= 100


def test_cli_prints_group_data():
    run = subprocess.run(
        [sys.executable, "-m", "turnout.settings", "--group-data"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )

    assert run.stdout == render_group_data()


def test_cli_without_a_flag_says_what_to_pass():
    run = subprocess.run(
        [sys.executable, "-m", "turnout.settings"], capture_output=True, text=True, cwd=REPO
    )

    assert run.returncode == 2
    assert "--group-data" in run.stderr


def test_group_data_all_loads_cleanly():
    assert group_data("all") == DEFAULTS
    assert load_settings(group_data("all")) == Settings()


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_environment_group_data_only_overrides_known_settings(name):
    overrides = group_data(name)

    assert set(overrides) <= set(DEFAULTS)
    load_settings({**group_data("all"), **overrides})


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_environment_group_data_loads_clean_in_a_pyinfra_inventory(name):
    data = cli_host_data({name: ["host1"]})

    assert unknown_keys(data) == []
    assert load_settings(data).require_exact_counts is (name == "prod")


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
    assert load_settings(SimpleNamespace(dump_jobs=4, ssh_port=22)).dump_jobs == 4
    with pytest.raises(SettingsError, match="unknown setting unrelated"):
        load_settings(SimpleNamespace(dump_jobs=4, unrelated="refused"))


def test_data_value_reads_mappings_and_attributes():
    assert data_value({"a": 1}, "a") == 1
    assert data_value(SimpleNamespace(a=2), "a") == 2
    assert data_value({}, "a", "fallback") == "fallback"


def test_data_keys_lists_every_layer_of_host_data():
    data = HostData("host1", {"dump_jobs": 8}, {"ssh_port": 22}, {"dump_jobs": 4, "_sudo": True})
    data.rsync_delete = True  # set during a deploy: the override layer

    assert sorted(data_keys(data)) == ["_sudo", "dump_jobs", "rsync_delete", "ssh_port"]
    assert data_keys({"a": 1}) == ["a"]
    assert data_keys(SimpleNamespace(a=1)) == ["a"]
    assert data_keys(object()) == []


def test_pyinfra_keys_pass():
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
        {"evidence_timestamp": 20240102, "http_timeout_s": 10, "extra_data_keys": "ticket"},
    )

    assert settings.evidence_timestamp == "20240102"
    assert settings.http_timeout_s == 10.0
    assert settings.extra_data_keys == ("ticket",)


def test_valid_non_default_values():
    settings = load_settings(
        {
            "evidence_timestamp": "20240102T030405Z",
            "compose_project": "shop",
            "docker_bin": "/usr/bin/docker",
            "hostside_python": "python3 -X utf8",
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
        ("app_root", "srv/app"),
        ("env_file", ".env"),
        ("compose_file", 3),
        ("compose_project", "Shop Project"),
        ("docker_bin", "docker compose"),
        ("docker_bin", "--help"),
        ("hostside_python", ""),
        ("hostside_python", "'unterminated"),
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
        ("rsync_rsh", ""),
        ("rsync_rsh", "ssh\n-p 2222"),
        ("work_dir", "tmp"),
        ("extra_data_keys", "ticket owner"),
        ("extra_data_keys", ["ticket-id"]),
        ("extra_data_keys", 3),
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
                {"dump_format": "tar", "dump_jobs": 0, "rsync_delte": True},
                {"base_url": "nope", "tables": "ok_table"},
            ),
        )

    lines = str(raised.value).splitlines()
    assert len(lines) == 4
    assert [line.split()[1] for line in lines] == [
        "base_url",
        "dump_format",
        "dump_jobs",
        "setting",
    ]
    assert lines[3].startswith("unknown setting rsync_delte ")


def test_long_values_are_truncated():
    with pytest.raises(SettingsError) as raised:
        load_settings({"rsync_rsh": "x" * 1000})

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


# --- unknown keys -------------------------------------------------------------------------


def test_a_typo_is_refused_with_the_suggestion():
    with pytest.raises(SettingsError) as raised:
        load_settings({"rsync_delte": True})

    assert str(raised.value) == (
        "unknown setting rsync_delte (did you mean rsync_delete?); "
        "check the spelling in group_data/ or --data"
    )


def test_a_typo_of_a_pyinfra_key_is_refused_too():
    with pytest.raises(
        SettingsError, match=r"unknown setting ssh_prot \(did you mean ssh_port\?\)"
    ):
        load_settings({"ssh_prot": 2222})


def test_an_unknown_key_without_a_close_match_points_at_all_py():
    with pytest.raises(SettingsError) as raised:
        load_settings({"zzqx": 1})

    assert str(raised.value) == (
        "unknown setting zzqx (no setting has a similar name); check the spelling in "
        "group_data/ or --data: group_data/all.py lists every setting, and a key of your own "
        "belongs in extra_data_keys"
    )


@pytest.mark.parametrize("key", REMOVED)
def test_a_removed_setting_gets_no_far_fetched_suggestion(key):
    with pytest.raises(SettingsError, match=rf"^unknown setting {key} \(no setting has a similar"):
        load_settings({key: 1})


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED.items()))
def test_a_renamed_setting_suggests_its_successor(old, new):
    with pytest.raises(SettingsError, match=rf"^unknown setting {old} \(did you mean {new}\?"):
        load_settings({old: 1})


def test_cutover_steps_run_in_the_deploys_order_whatever_the_list_says():
    assert load_settings({"steps": "health,freeze"}).steps == ("freeze", "health")


def test_an_unknown_cutover_step_is_refused_with_the_known_ones():
    with pytest.raises(SettingsError, match="setting steps must be a list of cutover steps from"):
        load_settings({"steps": "freeze,restore"})


def test_odd_unknown_keys_are_shown_quoted_on_one_line():
    with pytest.raises(SettingsError) as raised:
        load_settings({"bad key\nx": 1})

    assert str(raised.value).startswith("unknown setting 'bad key\\nx' (")
    assert "\n" not in str(raised.value)


def test_every_unknown_key_is_one_line_after_the_bad_values():
    with pytest.raises(SettingsError) as raised:
        load_settings({"rsync_delte": True, "dump_jobs": 0, "tabels": "users"})

    lines = str(raised.value).splitlines()
    assert lines[0].startswith("setting dump_jobs must be ")
    assert lines[1].startswith("unknown setting rsync_delte (did you mean rsync_delete?)")
    assert lines[2].startswith("unknown setting tabels (did you mean tables?)")


def test_unknown_keys_lists_only_unknown_keys():
    data = {"rsync_delte": True, "ssh_port": 22, "_sudo": True, "dump_jobs": 2, "ticket": "T-1"}

    assert unknown_keys(data) == ["rsync_delte", "ticket"]
    assert unknown_keys({**data, "extra_data_keys": ["ticket"]}) == ["rsync_delte"]


def test_pyinfra_data_keys_come_from_pyinfra():
    keys = pyinfra_data_keys()

    # Global arguments, ssh/docker/fake connector data, and the keys pyinfra does not declare.
    assert {"_sudo", "_sudo_user", "_env", "_chdir", "_success_exit_codes"} <= keys
    assert {"ssh_port", "ssh_user", "ssh_known_hosts_file", "ssh_strict_host_key_checking"} <= keys
    assert {"docker_identifier", "fake_responses", "chroot_directory", "docker_image"} <= keys
    assert not keys & set(DEFAULTS)


def test_extra_data_keys_allow_keys_of_your_own():
    settings = load_settings({"extra_data_keys": "ticket,owner", "ticket": "T-1", "owner": "ops"})

    assert settings.extra_data_keys == ("ticket", "owner")


def test_invalid_extra_data_keys_allow_nothing():
    with pytest.raises(SettingsError) as raised:
        load_settings({"extra_data_keys": 3, "ticket": "T-1"})

    lines = str(raised.value).splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["setting", "extra_data_keys"],
        ["unknown", "setting"],
    ]


# --- unknown keys in a real pyinfra inventory ---------------------------------------------


def test_inventory_typo_in_override_data_is_refused_with_the_suggestion():
    data = cli_host_data({"staging": ["host1"]}, override={"rsync_delte": True})

    with pytest.raises(SettingsError) as raised:
        load_settings(data)

    assert str(raised.value) == (
        "unknown setting rsync_delte (did you mean rsync_delete?); "
        "check the spelling in group_data/ or --data"
    )


def test_inventory_pyinfra_keys_pass():
    data = cli_host_data(
        {"prod": [("host1", {"ssh_port": 2222, "ssh_user": "deploy"})]},
        override={"_sudo": True, "ssh_key": "/home/me/.ssh/id_ed25519"},
    )

    assert unknown_keys(data) == []
    assert load_settings(data).require_exact_counts is True


def test_inventory_extra_data_keys_pass():
    host = ("host1", {"ticket": "T-1", "owner": "ops"})
    data = cli_host_data({"staging": [host]}, override={"extra_data_keys": "ticket,owner"})

    assert load_settings(data).extra_data_keys == ("ticket", "owner")
    assert unknown_keys(cli_host_data({"staging": [host]})) == ["ticket", "owner"]


def test_inventory_group_data_defining_extra_data_keys():
    inventory = Inventory(
        (["host1"], group_data("all")),
        staging=([("host1", {"ticket": "T-1"})], {"extra_data_keys": ("ticket",)}),
    )

    assert load_settings(inventory.get_host("host1").data).extra_data_keys == ("ticket",)


def test_stack_inventory_keys_pass(tmp_path, monkeypatch):
    app = {
        "app_root": "/srv/app",
        "env_file": "/srv/app/.env",
        "compose_file": "/srv/app/docker-compose.yml",
        "compose_project": "stack",
        "assets_dir": "/srv/app/.data",
        "evidence_root": "/var/lib/turnout/evidence",
        "base_url": "http://127.0.0.1:18081",
    }
    stack = {
        "ssh": {
            "hosts": {"staging": {"port": 2201}, "prod": {"port": 2202}},
            "client_key": str(tmp_path / "client_key"),
            "known_hosts": str(tmp_path / "known_hosts"),
        },
        "python": "/usr/bin/python3",
        "hosts": {"staging": app, "prod": app},
    }
    (tmp_path / "stack.json").write_text(json.dumps(stack))
    monkeypatch.setenv("TURNOUT_STACK_DIR", str(tmp_path))
    monkeypatch.delenv("TURNOUT_STACK_KNOWN_HOSTS", raising=False)
    inventory = runpy.run_path(str(REPO / "tests" / "stack" / "inventory.py"))

    for group in ("staging", "prod"):
        data = cli_host_data({group: inventory[group]})
        assert unknown_keys(data) == []
        assert load_settings(data).required_extensions == ("pg_trgm",)
