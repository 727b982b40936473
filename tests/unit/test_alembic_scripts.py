"""The Python that facts/alembic.py runs inside the app's service, run here against a small
Alembic project: the downgrade path and what makes a revision irreversible."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from turnout.facts.alembic import ANSWER_MARK, DOWNGRADE_SCRIPT, AlembicDowngradePath

REVISION = '''"""{message}"""
revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
{body}
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text("")
    bodies = {
        "0001": ("initial", None, '    """Drop everything."""\n    print("dropped")'),
        "0002": ("data fix, one way", "0001", '    """Nothing to undo."""\n    pass'),
        "0003": ("notes", "0002", "    print('drop notes')"),
        "0004": ("denied", "0003", "    raise NotImplementedError('no way back')"),
    }
    for rev, (message, down, body) in bodies.items():
        (versions / f"{rev}.py").write_text(
            REVISION.format(message=message, rev=rev, down=down, body=body)
        )
    return tmp_path


def downgrade_path(project: Path, current: str, target: str) -> dict:
    script = DOWNGRADE_SCRIPT % ("alembic.ini", current, target, ANSWER_MARK)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, check=True
    )
    return AlembicDowngradePath().process(result.stdout.splitlines())


def test_one_step_down_from_a_reversible_revision(project: Path) -> None:
    path = downgrade_path(project, "0003", "-1")
    assert path["ok"] and path["target"] == "0002" and path["reversible"] is True
    assert [step["revision"] for step in path["steps"]] == ["0003"]


def test_a_pass_or_raise_downgrade_on_the_way_is_irreversible(project: Path) -> None:
    path = downgrade_path(project, "0003", "0001")
    assert path["reversible"] is False
    assert [(s["revision"], s["why"]) for s in path["steps"]] == [
        ("0003", None),
        ("0002", "its downgrade() does nothing"),
    ]
    raising = downgrade_path(project, "0004", "0003")
    assert raising["steps"][0]["why"] == "its downgrade() raises"


def test_an_unknown_revision_is_an_error_not_a_pass(project: Path) -> None:
    path = downgrade_path(project, "0003", "9999")
    assert path["ok"] is False and "9999" in json.dumps(path)
