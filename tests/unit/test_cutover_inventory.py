"""tests/cutover's inventory loading and its mapping to testinfra hosts (no host contacted)."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cutover"))

from cutover_hosts import (  # noqa: E402
    CutoverHost,
    InventoryProblem,
    limit_hosts,
    load_hosts,
    parse_data_option,
    probe_command,
    service_list,
    settings_of,
    ssh_config_block,
    to_testinfra,
)

INVENTORY = """
import os
_private = ["not-a-host"]
web = [
    ("app1", {"ssh_port": 2222, "ssh_user": "deploy", "ssh_key": "/keys/id", "tier": "host"}),
    "app2",
]
db = [("db1", {"ssh_hostname": "10.0.0.5", "ssh_known_hosts_file": "/pinned/known hosts"})]
local = ["@local"]
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    (tmp_path / "inv").mkdir()
    path = tmp_path / "inv" / "prod.py"
    path.write_text(INVENTORY)
    group_data = tmp_path / "group_data"
    group_data.mkdir()
    (group_data / "all.py").write_text(
        'import os\nevidence_root = "/all"\ntier = "all"\nbase_url = "http://all"\n'
    )
    (group_data / "web.py").write_text('tier = "web"\nbase_url = "http://web"\n')
    (group_data / "prod.py").write_text('evidence_root = "/prod"\n')
    return path


def by_name(hosts: list[CutoverHost]) -> dict[str, CutoverHost]:
    return {host.name: host for host in hosts}


def test_hosts_groups_and_data_merge_like_pyinfra(inventory: Path) -> None:
    loaded = load_hosts(str(inventory), {"base_url": "http://cli"}, cwd=inventory.parents[1])
    hosts = by_name(loaded)
    assert list(hosts) == ["app1", "app2", "db1", "@local"]
    app1 = hosts["app1"]
    assert app1.groups == ["web", "prod"]  # the lists naming it, then the file's name
    assert app1.data["tier"] == "host"  # host data over group data over all
    assert hosts["app2"].data["tier"] == "web"
    assert hosts["db1"].data["tier"] == "all"
    assert app1.data["evidence_root"] == "/prod"  # group_data/<file name>.py applies to all
    assert all(h.data["base_url"] == "http://cli" for h in hosts.values())  # --data wins
    assert "os" not in app1.data  # an import in group data is not data
    assert "not-a-host" not in hosts


def test_the_same_data_as_pyinfras_own_loader(inventory: Path) -> None:
    """pyinfra_cli's loader runs in a subprocess: importing it monkey-patches with gevent."""
    script = (
        "import json, sys\n"
        "from pyinfra.api import State\n"
        "from pyinfra.context import ctx_state\n"
        "from pyinfra_cli.inventory import make_inventory\n"
        "with ctx_state.use(State()):\n"
        "    inv = make_inventory(sys.argv[1], {'base_url': 'http://cli'}, cwd=sys.argv[2])\n"
        "print(json.dumps({h.name: [list(h.groups), h.data.dict()] for h in inv}, default=str))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(inventory), str(inventory.parents[1])],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    ours = load_hosts(str(inventory), {"base_url": "http://cli"}, cwd=inventory.parents[1])
    assert {h.name: h.data for h in ours} == {n: d for n, (_, d) in theirs.items()}
    # (pyinfra's @local connector adds groups of its own, some twice)
    assert {h.name: set(h.groups) for h in ours} == {
        n: set(groups) - {"all", "@local"} for n, (groups, _) in theirs.items()
    }


def test_ssh_host_gets_a_strict_ssh_config(inventory: Path, tmp_path: Path) -> None:
    hosts = by_name(load_hosts(str(inventory), cwd=inventory.parents[1]))
    spec, kwargs = to_testinfra(hosts["app1"], tmp_path / "work")
    assert spec == "ssh://turnout-app1"
    config = Path(kwargs["ssh_config"]).read_text()
    assert "Host turnout-app1\n" in config
    for line in ("HostName app1", "Port 2222", "User deploy", "IdentityFile /keys/id"):
        assert f"    {line}\n" in config
    assert "    StrictHostKeyChecking yes\n" in config and "    BatchMode yes\n" in config
    block = ssh_config_block("db1", hosts["db1"].data)
    assert '    UserKnownHostsFile "/pinned/known hosts"\n' in block
    assert "    HostName 10.0.0.5\n" in block
    assert to_testinfra(hosts["@local"], tmp_path / "work") == ("local://", {})


def test_unsupported_hosts_and_passwords_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InventoryProblem, match="only @local and SSH hosts"):
        to_testinfra(CutoverHost("@docker/x", [], {}), tmp_path)
    with pytest.raises(InventoryProblem, match="ssh_password"):
        ssh_config_block("h", {"ssh_password": "pw"})
    with pytest.raises(InventoryProblem, match="no such file"):
        load_hosts(str(tmp_path / "missing.py"))


def test_an_inventory_that_fails_says_why_and_leaves_signals_alone(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "raise RuntimeError('TURNOUT_PROD_HOSTS is not set')\n"
    )
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(InventoryProblem, match="RuntimeError: TURNOUT_PROD_HOSTS is not set"):
        load_hosts(str(path), cwd=tmp_path)
    assert signal.getsignal(signal.SIGINT) is before


def test_the_prod_inventory_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    monkeypatch.setenv("TURNOUT_PROD_HOSTS", "app1.example.net:2200")
    monkeypatch.setenv("TURNOUT_SSH_KNOWN_HOSTS", str(known))
    (host,) = load_hosts(str(REPO / "inventories" / "prod.py"), cwd=REPO)
    assert host.name == "app1.example.net"
    assert sorted(host.groups) == ["prod", "prod_app", "prod_db"]  # one host: both roles
    assert host.data["require_exact_counts"] is True  # group_data/prod.py
    assert host.data["evidence_root"] == "/var/lib/turnout/evidence"  # group_data/all.py
    block = ssh_config_block(host.name, host.data)
    assert "    Port 2200\n" in block and f"    UserKnownHostsFile {known}\n" in block
    settings = settings_of(host.data)
    assert settings.require_exact_counts is True


def test_limit_and_data_options(inventory: Path) -> None:
    hosts = load_hosts(str(inventory), cwd=inventory.parents[1])
    assert [h.name for h in limit_hosts(hosts, ["web"])] == ["app1", "app2"]
    assert [h.name for h in limit_hosts(hosts, ["db*", "@local"])] == ["db1", "@local"]
    assert limit_hosts(hosts, []) == hosts
    assert parse_data_option(["a=true", "b=3", "c=x,y", 'd=["p"]', "e=a=b"]) == {
        "a": True,
        "b": 3,
        "c": "x,y",
        "d": ["p"],
        "e": "a=b",
    }
    with pytest.raises(InventoryProblem):
        parse_data_option(["novalue"])
    assert service_list("api, worker") == ["api", "worker"]
    assert service_list(["db"]) == ["db"] and service_list(None) is None


def test_probe_runs_here(tmp_path: Path) -> None:
    """The probe program as the host runs it (here, with this Python)."""
    assets = tmp_path / "data" / "assets"
    (assets / "sub").mkdir(parents=True)
    (assets / "a").write_text("1")
    (assets / "sub" / "b").write_text("2")
    (assets / "link").symlink_to(assets / "a")
    (tmp_path / "data" / ".assets.staging-123").mkdir()

    def probe(action: str, **params) -> dict:
        command = probe_command(sys.executable, action, **params)
        result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
        return json.loads(result.stdout)

    assert probe("assets", dir=str(assets)) == {
        "is_dir": True,
        "files": 2,
        "staging": [".assets.staging-123"],
    }
    runs = tmp_path / "evidence" / "cutover"
    (runs / "20260101T000000Z").mkdir(parents=True)
    (runs / "20260102T000000Z" / "outputs").mkdir(parents=True)
    (runs / "20260102T000000Z" / "run.json").write_text('{"task": "cutover"}')
    assert probe("runs", root=str(runs)) == {"runs": ["20260101T000000Z", "20260102T000000Z"]}
    found = probe("run_dir", dir=str(runs / "20260102T000000Z"), files=["run.json", "x.json"])
    assert found["files"] == {"run.json": {"task": "cutover"}, "x.json": None}
    env_file = tmp_path / ".env"
    env_file.write_text('DATABASE_URL="postgresql://app:p%40ss@127.0.0.1:1/app"\n')
    answer = probe("counts", dsn_env="DATABASE_URL", env_file=str(env_file), tables=[])
    assert "error" in answer and "p%40ss" not in answer["error"] and "p@ss" not in answer["error"]
    missing = probe("counts", dsn_env="NOPE_DSN", env_file=str(env_file), tables=[])
    assert missing == {"error": f"NOPE_DSN is not set in the environment or {env_file}"}
