"""Facts about an app that runs on the host itself (``app_runs_in=host``), not in compose."""

from pyinfra.api import FactBase, QuoteString, StringCommand


class HostAppRunning(FactBase[dict]):
    """
    Whether the app on the host runs: the operator's status command (``app_status_command``,
    or ``systemctl is-active --quiet <app_unit>``) exiting 0 means it runs. The command is the
    operator's own shell command, run as given.

    .. code:: python

        from turnout.facts.hostapp import HostAppRunning
        state = host.get_fact(HostAppRunning, status_command="systemctl is-active --quiet app")
        # {"running": True, "exit": 0}
    """

    def command(self, status_command: str) -> StringCommand:
        return StringCommand(
            "sh", "-c", QuoteString(status_command), ">/dev/null", "2>&1;", "echo", "exit=$?"
        )

    def process(self, output: list[str]) -> dict:
        code = next((line[5:] for line in output if line.startswith("exit=")), "")
        exit_code = int(code) if code.isdigit() else None
        return {"running": exit_code == 0, "exit": exit_code}
