"""Building pyinfra inventories from the operator's environment (C3).

Hosts, ports and the pinned ``known_hosts`` come from environment variables, never from the repo;
host keys are always checked strictly (pyinfra's default is ``accept-new``).

    from turnout.inventory import ssh_hosts_from_env
    hosts = ssh_hosts_from_env("STAGING")   # reads TURNOUT_STAGING_HOSTS, TURNOUT_SSH_KNOWN_HOSTS…
"""

import os


class InventoryError(ValueError):
    """The environment does not describe the inventory; the message says which variable to set."""


def env_value(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def ssh_hosts_from_env(environment: str) -> list[tuple[str, dict]]:
    """Hosts of ``environment`` (``STAGING`` or ``PROD``) as pyinfra inventory entries.

    ``TURNOUT_<ENV>_HOSTS``: comma-separated ``host`` or ``host:port``.
    ``TURNOUT_<ENV>_SSH_USER`` / ``TURNOUT_SSH_USER`` (default ``root``),
    ``TURNOUT_<ENV>_SSH_KEY`` / ``TURNOUT_SSH_KEY`` (optional private key path),
    ``TURNOUT_<ENV>_KNOWN_HOSTS`` / ``TURNOUT_SSH_KNOWN_HOSTS`` (required: the pinned host keys).
    """
    from turnout.failures import install_one_line_failures
    from turnout.lock import install_interrupt_handler

    install_one_line_failures()  # before pyinfra connects: an unreachable host says so in one line
    install_interrupt_handler()  # Ctrl-C while connecting exits 130 too
    prefix = f"TURNOUT_{environment.upper()}"
    hosts = env_value(f"{prefix}_HOSTS")
    if not hosts:
        raise InventoryError(
            f"{prefix}_HOSTS is not set; export it as a comma-separated list of host[:port]"
        )
    known_hosts = env_value(f"{prefix}_KNOWN_HOSTS", env_value("TURNOUT_SSH_KNOWN_HOSTS"))
    if not known_hosts or not os.path.isfile(known_hosts):
        raise InventoryError(
            f"{prefix}_KNOWN_HOSTS (or TURNOUT_SSH_KNOWN_HOSTS) must name an existing known_hosts "
            "file that pins the hosts' keys; got " + repr(known_hosts)
        )
    data: dict = {
        "ssh_user": env_value(f"{prefix}_SSH_USER", env_value("TURNOUT_SSH_USER", "root")),
        "ssh_known_hosts_file": known_hosts,
        "ssh_strict_host_key_checking": "yes",
        "ssh_forward_agent": False,
    }
    key = env_value(f"{prefix}_SSH_KEY", env_value("TURNOUT_SSH_KEY"))
    if key:
        data["ssh_key"] = key
    entries = []
    for item in hosts.split(","):
        name, _, port = item.strip().partition(":")
        host_data = dict(data)
        if port:
            if not port.isdigit():
                raise InventoryError(f"{prefix}_HOSTS: port of {item.strip()!r} is not a number")
            host_data["ssh_port"] = int(port)
        entries.append((name, host_data))
    return entries


def role_hosts(environment: str, role: str, hosts: list[tuple[str, dict]]) -> list[str]:
    """Names of the hosts of ``environment`` that have ``role`` (``APP`` or ``DB``), for an
    inventory group the cutover's ``app_hosts_group``/``db_hosts_group`` settings name.

    ``TURNOUT_<ENV>_<ROLE>_HOSTS``: comma-separated host names, each one of ``hosts``. Unset:
    every host is an app host; the database host must be named when there are several hosts
    (backup and restore-db run once, where the database is).
    """
    prefix = f"TURNOUT_{environment.upper()}"
    variable = f"{prefix}_{role.upper()}_HOSTS"
    known = [name for name, _ in hosts]
    given = env_value(variable)
    if not given:
        if role.upper() == "DB" and len(known) > 1:
            raise InventoryError(
                f"{variable} is not set and {prefix}_HOSTS names {len(known)} hosts; name the "
                "database host (backup and restore-db run once, there)"
            )
        return known
    names = [item.strip() for item in given.split(",") if item.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InventoryError(
            f"{variable} names {', '.join(unknown)}, not in {prefix}_HOSTS ({', '.join(known)})"
        )
    return names
