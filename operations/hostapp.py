"""Start and stop an app that runs on the host itself (``app_runs_in=host``: a systemd unit, a
venv started by the operator's commands), as ``compose.up``/``compose.freeze`` do for compose."""

from collections.abc import Callable

from pyinfra import host
from pyinfra.api import operation

from turnout.facts.hostapp import HostAppRunning


@operation()
def start(start_command: str, status_command: str, stopped_before: bool = False):
    """
    Start the app on the host unless its status command says it runs, so a second run changes
    nothing. The start command must exit 0 only once the app is up (health checks it next).

    + start_command: starts the app (``systemctl start app``)
    + status_command: exits 0 while the app runs (``systemctl is-active --quiet app``)
    + stopped_before: an earlier step of this run stops it (a freeze): while planning it counts
      as stopped, so the plan says it will be started again

    .. code:: python

        from turnout.operations import hostapp
        hostapp.start(
            name="Start the app",
            start_command="systemctl start app",
            status_command="systemctl is-active --quiet app",
        )
    """
    state = host.get_fact(HostAppRunning, status_command=status_command)
    stopping = stopped_before and not host.state.is_executing
    if state["running"] and not stopping:
        host.noop(f"the app runs on the host ({status_command} exits 0)")
        return
    why = "stopped by the freeze step first" if state["running"] else (
        f"{status_command} exits {state['exit']}"
    )
    host.log(f"Will start the app on the host ({why}): {start_command}")
    yield start_command  # the operator's own shell command, run by pyinfra's shell as given


@operation()
def stop(
    stop_command: str,
    status_command: str,
    unless: Callable[[], str | None] | None = None,
):
    """
    Stop the app on the host (the writers) before a backup and restore; an app already stopped
    is left alone, so a second run changes nothing.

    + stop_command: stops the app (``systemctl stop app``)
    + status_command: exits 0 while the app runs
    + unless: asked first; a reason it returns means the app need not be stopped (a rerun of a
      runbook that completed with nothing left to do)

    .. code:: python

        from turnout.operations import hostapp
        hostapp.stop(
            name="Freeze: stop the app",
            stop_command="systemctl stop app",
            status_command="systemctl is-active --quiet app",
        )
    """
    state = host.get_fact(HostAppRunning, status_command=status_command)
    if not state["running"]:
        host.noop(f"the app on the host is stopped ({status_command} exits {state['exit']})")
        return
    reason = unless() if unless else None
    if reason:
        host.noop(f"writers left running: {reason}")
        if not host.state.is_executing:
            host.log(f"Writers left running: {reason}")
        return
    host.log(f"Will stop the app on the host: {stop_command}")
    yield stop_command
