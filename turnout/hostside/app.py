"""An app that runs on the host (``app_runs_in=host``: systemd, a venv), not in compose.

``app_exec`` runs the app's own Python (Alembic, the facts' scripts) in the app's directory with
the environment the app gets: this process's, plus every variable of the server-side ``.env``
read with compose's rules (``envfile.py``), the way a systemd unit's ``EnvironmentFile=`` gives
it. The values reach the child's environment only, never argv. It replaces this process
(``os.execvpe``): its output and exit status are the command's own, so a caller reads it as it
would read ``docker compose exec``.

    python -c 'from turnout.remote import hostside_command as c
    print(c("app_exec", {"argv": ["python", "-V"], "cwd": "/srv/app",
                         "env_file": "/srv/app/.env"}).get_raw_value())' | sh

Stdlib only, no ``from __future__``: this module is shipped to the hosts.
"""

import os
import sys

from turnout.hostside import envfile


def app_environment(env_file: str | None) -> dict[str, str]:
    """This environment plus the ``.env``'s variables (this environment wins, as in compose)."""
    added: dict[str, str] = {}
    if env_file:
        added = envfile.read_env_file(env_file)
    return {**added, **os.environ}


def exec_app(params: dict) -> int:
    """Replace this process with ``params["argv"]`` in ``cwd`` with the app's environment; on a
    problem, one line on stderr and exit 127 (as a shell says of a command it cannot run)."""
    argv = params.get("argv") or []
    try:
        if not argv or not all(isinstance(word, str) for word in argv):
            raise ValueError("argv must be a non-empty list of words")
        env = app_environment(params.get("env_file"))
        if params.get("cwd"):
            os.chdir(params["cwd"])
        os.execvpe(argv[0], argv, env)  # noqa: S606 - the app's own program, no shell
    except FileNotFoundError as error:
        problem = f"{error.filename or argv[0]} does not exist on this host"
    except PermissionError as error:
        problem = f"{error.filename or argv[0]} is not readable or runnable by this user"
    except envfile.EnvFileError as error:
        problem = f"env file {params.get('env_file')}: {error}"
    except (OSError, ValueError) as error:
        problem = str(error)
    print(f"turnout: app_exec: cannot run the app's {argv[:1]} on the host: {problem}",
          file=sys.stderr)
    return 127
