"""Test deploy: ``revisions.check_pending`` on the stack's prod host (its app's database, Alembic
in the ``api`` service), with ``--data pending_record=<path>`` for the report (optional) and the
setting ``allow_unchecked_revisions``. Run by tests/integration/test_pending_revisions.py:

    pyinfra --dry tests/stack/inventory.py tests/integration/deploys/check_pending.py \\
        --limit stack-prod
"""

from pyinfra import host

from turnout.database import Database
from turnout.failures import install_one_line_failures
from turnout.operations import revisions

install_one_line_failures()  # a stop is one ``--> turnout:`` line, as in the runbooks
data = host.data

revisions.check_pending(
    name="Check pending revisions against the live data",
    database=Database("DATABASE_URL", data.get("env_file")),
    env_file=data.get("env_file"),
    compose_file=data.get("compose_file"),
    project=data.get("compose_project"),
    docker_bin=data.get("docker_bin") or "docker",
    service="api",
    app_python=data.get("app_python") or "python",
    record=data.get("pending_record") or None,
)
