"""Facts about the app's Alembic migrations, asked of Alembic inside the app's compose service
(C2: Alembic revision; S0.4: Python that needs the app's dependencies runs in its container)."""

from __future__ import annotations

import json
import re
import shlex

from pyinfra.api import FactBase, QuoteString, StringCommand

from turnout import hostapp
from turnout.dsn import redact

# Printed before the JSON answer, so Alembic's own log lines around it are ignored.
ANSWER_MARK = "#turnout-alembic "
# One Python run asks Alembic for the current revision, the heads and the history from the
# current revision to the heads (``alembic current``, ``heads``, ``history -r current:heads``,
# and the same ``--verbose`` for the audit record).
STATUS_SCRIPT = """
import io, json
from alembic import command
from alembic.config import Config
answer = {}
calls = (("current", command.current, (), {}), ("heads", command.heads, (), {}),
         ("history", command.history, ("current:heads",), {}),
         ("history_verbose", command.history, ("current:heads",), {"verbose": True}))
for name, call, args, kwargs in calls:
    out = io.StringIO()
    try:
        call(Config(%r, stdout=out), *args, **kwargs)
    except Exception as error:
        answer["error"] = "alembic %%s failed: %%s: %%s" %% (name, type(error).__name__, error)
        break
    answer[name] = out.getvalue().splitlines()
print(%r + json.dumps(answer))
"""
# "0001 -> 0002 (head), gallery_items table"; "<base> -> 0001, initial"; a merge: "a, b -> c"
HISTORY_RE = re.compile(
    r"^(?P<down>.+?) -> (?P<rev>[^\s,]+)(?P<tags>(?: \([a-z]+\))*), (?P<msg>.*)$"
)
REVISION_RE = re.compile(r"^(?P<rev>[0-9A-Za-z_]+)(?P<tags>(?: \([a-z]+\))*)\s*$")


def app_argv(
    *argv: str,
    service: str,
    running: bool,
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
    env_names: tuple[str, ...] = (),
) -> list[str]:
    """``argv`` inside the app's compose ``service``: ``exec -T`` while it runs, else a one-off
    ``run --rm --no-deps -T`` container of the same service (the writers are frozen during a
    cutover, the database is not). ``env_names`` are passed as ``-e NAME``: compose takes their
    values from its own environment. On a host that runs the app itself (``app_runs_in=host``)
    it is ``argv`` in the app's directory there (``turnout.hostapp.host_argv``).

    >>> app_argv("python", "-V", service="api", running=False, env_file="/a/.env",
    ...          compose_file="/a/c.yml")[-6:]
    ['--rm', '--no-deps', '-T', 'api', 'python', '-V']
    """
    from turnout import hostapp

    if hostapp.runs_on_host():  # no compose: the app's Python in its directory on the host
        return hostapp.host_argv(list(argv), env_file, env_names)
    how = ["exec", "-T"] if running else ["run", "--rm", "--no-deps", "-T"]
    for name in env_names:
        how += ["-e", name]
    where = [docker_bin, "compose", "--env-file", env_file, "-f", compose_file]
    if project:
        where += ["-p", project]
    return [*where, *how, service, *argv]


def app_command(*argv: str, **where: object) -> StringCommand:
    """``app_argv`` as a shell command (each word quoted)."""
    return StringCommand(*(QuoteString(word) for word in app_argv(*argv, **where)))


def parse_revisions(lines: list[str]) -> list[str]:
    """Revision ids of ``alembic current``/``heads`` output (``0002 (head)`` → ``0002``).

    >>> parse_revisions(["INFO  [alembic] Context impl.", "0002 (head)"])
    ['0002']
    """
    return [m.group("rev") for line in lines if (m := REVISION_RE.match(line.strip()))]


def parse_history(lines: list[str], current: list[str]) -> list[dict]:
    """The revisions still to apply, oldest first, from ``alembic history -r current:heads``
    (newest first, and including the current revision itself).

    >>> parse_history(["0002 -> 0003 (head), add notes", "0001 -> 0002, gallery"], ["0002"])
    [{'revision': '0003', 'down': '0002', 'message': 'add notes'}]
    """
    pending = []
    for line in lines:
        match = HISTORY_RE.match(line.strip())
        if match and match.group("rev") not in current:
            pending.append(
                {
                    "revision": match.group("rev"),
                    "down": match.group("down"),
                    "message": match.group("msg"),
                }
            )
    return list(reversed(pending))


class AlembicStatus(FactBase[dict]):
    """
    The app's migrations as Alembic sees them inside the app's compose service: the database's
    current revision(s), the code's head(s), and the revisions still to apply (id and message,
    oldest first). ``running`` says whether ``service`` runs (``exec``) or not (a one-off
    ``run --rm``). ``alembic_ini`` is relative to the service's working directory.

    .. code:: python

        from turnout.facts.alembic import AlembicStatus
        status = host.get_fact(
            AlembicStatus, env_file="/srv/app/.env", compose_file="/srv/app/docker-compose.yml",
            project="app", service="api", app_python="uv run python", running=True,
        )
        # {"ok": True, "error": None, "current": ["0002"], "heads": ["0003"],
        #  "pending": [{"revision": "0003", "down": "0002", "message": "add notes"}],
        #  "at_head": False}
    """

    def command(
        self,
        env_file: str,
        compose_file: str,
        project: str | None = None,
        docker_bin: str = "docker",
        service: str = "api",
        app_python: str = "uv run python",
        running: bool = True,
        alembic_ini: str | None = None,
    ) -> StringCommand:
        alembic_ini = alembic_ini or hostapp.alembic_ini()
        script = STATUS_SCRIPT % (alembic_ini, ANSWER_MARK)
        inner = app_command(
            *shlex.split(app_python),
            "-c",
            script,
            service=service,
            running=running,
            env_file=env_file,
            compose_file=compose_file,
            project=project,
            docker_bin=docker_bin,
        )
        return StringCommand(inner, "2>&1", "||", "echo", QuoteString("#failed"))

    def process(self, output: list[str]) -> dict:
        answer = None
        for line in output:
            if line.startswith(ANSWER_MARK):
                answer = json.loads(line[len(ANSWER_MARK) :])
        if answer is None or answer.get("error"):
            problem = (answer or {}).get("error") or " ".join(
                line for line in output[-5:] if line != "#failed"
            )
            return {"ok": False, "error": redact(problem)[:400], "current": [], "heads": []}
        current = parse_revisions(answer["current"])
        heads = parse_revisions(answer["heads"])
        return {
            "ok": True,
            "error": None,
            "current": current,
            "heads": heads,
            "pending": parse_history(answer["history"], current),
            "at_head": sorted(current) == sorted(heads),
            "history_verbose": [
                redact(line) for line in answer.get("history_verbose", []) if line.strip()
            ][:400],
        }


# One Python run walks the revisions a downgrade from ``current`` to ``target`` would undo and
# reads each one's ``downgrade()``: empty, ``pass`` or a bare ``raise`` means it cannot be undone.
DOWNGRADE_SCRIPT = """
import ast, inspect, json, textwrap
from alembic.config import Config
from alembic.script import ScriptDirectory
answer = {"steps": []}
try:
    script = ScriptDirectory.from_config(Config(%r))
    current, target = %r, %r
    if target == "-1":
        down = script.get_revision(current).down_revision
        target = down if isinstance(down, str) else "base"
    answer["target"] = target
    for rev in script.iterate_revisions(current, target):
        why = None
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(rev.module.downgrade)))
            body = [n for n in tree.body[0].body
                    if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
            if not body or all(isinstance(n, ast.Pass) for n in body):
                why = "its downgrade() does nothing"
            elif all(isinstance(n, ast.Raise) for n in body):
                why = "its downgrade() raises"
        except (AttributeError, OSError, TypeError) as error:
            why = "no readable downgrade(): %%s" %% error
        answer["steps"].append({"revision": rev.revision, "message": rev.doc or "",
                                "reversible": why is None, "why": why})
except Exception as error:
    answer["error"] = "%%s: %%s" %% (type(error).__name__, error)
print(%r + json.dumps(answer))
"""


class AlembicDowngradePath(FactBase[dict]):
    """
    The revisions ``alembic downgrade <target>`` would undo from ``current`` (newest first), and
    whether each can be undone: its ``downgrade()`` is read inside the app's compose service; one
    that is empty, only ``pass`` or only a ``raise`` is irreversible. ``target`` may be ``-1``.

    .. code:: python

        from turnout.facts.alembic import AlembicDowngradePath
        path = host.get_fact(
            AlembicDowngradePath, current="0003", target="-1", env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml", app_python="uv run python",
        )
        # {"ok": True, "target": "0002", "reversible": True,
        #  "steps": [{"revision": "0003", "message": "…", "reversible": True, "why": None}]}
    """

    def command(
        self,
        current: str,
        target: str,
        env_file: str,
        compose_file: str,
        project: str | None = None,
        docker_bin: str = "docker",
        service: str = "api",
        app_python: str = "uv run python",
        running: bool = True,
        alembic_ini: str | None = None,
    ) -> StringCommand:
        alembic_ini = alembic_ini or hostapp.alembic_ini()
        script = DOWNGRADE_SCRIPT % (alembic_ini, current, target, ANSWER_MARK)
        inner = app_command(
            *shlex.split(app_python),
            "-c",
            script,
            service=service,
            running=running,
            env_file=env_file,
            compose_file=compose_file,
            project=project,
            docker_bin=docker_bin,
        )
        return StringCommand(inner, "2>&1", "||", "echo", QuoteString("#failed"))

    def process(self, output: list[str]) -> dict:
        answer = None
        for line in output:
            if line.startswith(ANSWER_MARK):
                answer = json.loads(line[len(ANSWER_MARK) :])
        if answer is None or answer.get("error"):
            problem = (answer or {}).get("error") or " ".join(
                line for line in output[-5:] if line != "#failed"
            )
            return {"ok": False, "error": redact(problem)[:400], "steps": []}
        steps = answer["steps"]
        return {
            "ok": True,
            "error": None,
            "target": answer["target"],
            "steps": steps,
            "reversible": all(step["reversible"] for step in steps),
        }
