"""Inventories built from the operator's environment: strict host keys, clear errors."""

from pathlib import Path

import pytest

from turnout.inventory import InventoryError, ssh_hosts_from_env


def test_hosts_from_env(monkeypatch, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    monkeypatch.setenv("TURNOUT_STAGING_HOSTS", "a.example, b.example:2222")
    monkeypatch.setenv("TURNOUT_SSH_KNOWN_HOSTS", str(known))
    hosts = ssh_hosts_from_env("staging")
    assert [name for name, _ in hosts] == ["a.example", "b.example"]
    assert hosts[1][1]["ssh_port"] == 2222
    assert all(d["ssh_strict_host_key_checking"] == "yes" for _, d in hosts)
    assert all(d["ssh_known_hosts_file"] == str(known) for _, d in hosts)


def test_missing_hosts_or_known_hosts(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TURNOUT_PROD_HOSTS", raising=False)
    with pytest.raises(InventoryError, match="TURNOUT_PROD_HOSTS is not set"):
        ssh_hosts_from_env("prod")
    monkeypatch.setenv("TURNOUT_PROD_HOSTS", "a")
    monkeypatch.setenv("TURNOUT_SSH_KNOWN_HOSTS", str(tmp_path / "missing"))
    with pytest.raises(InventoryError, match="known_hosts"):
        ssh_hosts_from_env("prod")


def test_role_hosts_default_to_every_host_for_apps_and_require_the_database_host(
    monkeypatch,
) -> None:
    from turnout.inventory import InventoryError, role_hosts

    hosts = [("app1", {}), ("app2", {}), ("db1", {})]
    monkeypatch.delenv("TURNOUT_PROD_APP_HOSTS", raising=False)
    monkeypatch.delenv("TURNOUT_PROD_DB_HOSTS", raising=False)
    assert role_hosts("PROD", "APP", hosts) == ["app1", "app2", "db1"]
    with pytest.raises(InventoryError, match="TURNOUT_PROD_DB_HOSTS is not set"):
        role_hosts("PROD", "DB", hosts)
    assert role_hosts("PROD", "DB", hosts[:1]) == ["app1"]
    monkeypatch.setenv("TURNOUT_PROD_DB_HOSTS", "db1")
    assert role_hosts("PROD", "DB", hosts) == ["db1"]
    monkeypatch.setenv("TURNOUT_PROD_APP_HOSTS", "app1,web9")
    with pytest.raises(InventoryError, match="names web9, not in TURNOUT_PROD_HOSTS"):
        role_hosts("PROD", "APP", hosts)
