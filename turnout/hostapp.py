"""The app as the current host runs it: in compose (default) or on the host itself
(``app_runs_in=host``: a systemd unit or a venv started by commands of the operator's).

Like ``hostside_python`` (``turnout.remote.host_python``), these are read from the current host's
data, so the facts and operations that run the app's Python (Alembic) or start and stop it take
no extra arguments: ``facts.alembic.app_argv`` asks ``runs_on_host()`` and, on the host, wraps
the app's argv in the host program's ``app_exec`` (the app's directory, the ``.env``'s
variables in the child's environment only).

    from turnout import hostapp
    if hostapp.runs_on_host():
        argv = hostapp.host_argv(["python", "-m", "alembic", "current"], env_file="/srv/app/.env")
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any


def _data() -> Any:
    from pyinfra.context import ctx_host, host

    return host.data if ctx_host.isset() else None


def _value(key: str, default: Any = None) -> Any:
    data = _data()
    return getattr(data, key, None) if data is not None else default


def runs_on_host() -> bool:
    """Whether the current host runs the app itself (``app_runs_in=host``)."""
    return _value("app_runs_in") == "host"


def app_dir() -> str:
    """Where the app's Python runs on the host: ``app_dir``, else ``app_root``."""
    return str(_value("app_dir") or _value("app_root") or "/srv/app")


def alembic_ini() -> str:
    """Alembic's config file, relative to the app's working directory (``alembic_ini``)."""
    return str(_value("alembic_ini") or "alembic.ini")


def host_argv(argv: list[str], env_file: str, env_names: tuple[str, ...] = ()) -> list[str]:
    """``argv`` run on the host in ``app_dir`` with the ``.env``'s variables (``app_exec``);
    ``env_names`` are already in the caller's environment (the host program sets them)."""
    from turnout.remote import hostside_argv

    return hostside_argv("app_exec", {"argv": list(argv), "cwd": app_dir(), "env_file": env_file})


def lifecycle(settings: Any) -> dict[str, str]:
    """The ``start``, ``stop`` and ``status`` commands of an app on the host: the explicit
    settings, else from ``app_unit`` (``systemctl start|stop|is-active --quiet <unit>``). A
    missing one raises ``ValueError`` naming the settings to set.

    >>> from types import SimpleNamespace as S
    >>> lifecycle(S(app_unit="app.service", app_start_command=None, app_stop_command=None,
    ...             app_status_command="/bin/true"))["status"]
    '/bin/true'
    """
    unit = settings.app_unit
    systemctl = {
        "start": f"systemctl start {shlex.quote(unit)}" if unit else None,
        "stop": f"systemctl stop {shlex.quote(unit)}" if unit else None,
        "status": f"systemctl is-active --quiet {shlex.quote(unit)}" if unit else None,
    }
    commands = {
        "start": settings.app_start_command or systemctl["start"],
        "stop": settings.app_stop_command or systemctl["stop"],
        "status": settings.app_status_command or systemctl["status"],
    }
    missing = [name for name, command in commands.items() if not command]
    if missing:
        raise ValueError(
            "app_runs_in=host needs app_unit (a systemd unit) or "
            + ", ".join(f"app_{name}_command" for name in missing)
        )
    return commands


def default_app_dir(settings: Any) -> str:
    """``app_dir`` or ``app_root`` of ``settings``."""
    return settings.app_dir or posixpath.normpath(settings.app_root)


def host_lifecycle(settings: Any) -> dict[str, str]:
    """``lifecycle`` with a missing command as the one-line settings error, while the deploy
    loads (before any step)."""
    from turnout.settings import SettingsError

    try:
        return lifecycle(settings)
    except ValueError as error:
        raise SettingsError(f"{error}; set them in group_data/ or with --data") from None


def stop_writers(settings: Any, name: str, unless: Any = None) -> None:
    """The freeze step: ``compose.freeze`` of ``freeze_services``, or the host app's stop."""
    if settings.app_runs_in == "host":
        from turnout.operations import hostapp

        commands = host_lifecycle(settings)
        hostapp.stop(
            name=name, stop_command=commands["stop"], status_command=commands["status"],
            unless=unless,
        )
        return
    from turnout.cutover import compose_where
    from turnout.operations import compose

    compose.freeze(
        name=name, services=settings.freeze_services, unless=unless, **compose_where(settings)
    )


def start_writers(
    settings: Any, name: str, stopped_before: tuple[str, ...] = (), after_downgrade: bool = False
) -> None:
    """The up step: ``compose.up`` (the one-shot ``migration_services`` done once they exited
    0, and never started after a downgrade: they would upgrade straight back), or the host
    app's start."""
    if settings.app_runs_in == "host":
        from turnout.operations import hostapp

        commands = host_lifecycle(settings)
        hostapp.start(
            name=name, start_command=commands["start"], status_command=commands["status"],
            stopped_before=bool(stopped_before),
        )
        return
    from turnout.cutover import compose_where
    from turnout.operations import compose

    compose.up(
        name=name,
        stopped_before=stopped_before,
        one_shot=settings.migration_services,
        skip=settings.migration_services if after_downgrade else (),
        **compose_where(settings),
    )


def record_services(settings: Any, name: str, path: str) -> None:
    """The services' state as evidence: ``compose ps``, or the host app's status."""
    if settings.app_runs_in == "host":
        from turnout.operations import evidence

        evidence.skipped(name=name, step="compose ps", why="the app runs on the host")
        return
    from turnout.cutover import compose_where
    from turnout.operations import compose

    compose.record_state(name=name, path=path, **compose_where(settings))
