"""An installed copy carries the collection: turnout, turnout.operations, turnout.facts."""

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

PROBE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "import turnout.operations.compose as c, turnout.facts.http as h; "
    "print(c.__file__); print(h.__file__)"
)


def test_wheel_contains_and_imports_the_collection(tmp_path: Path) -> None:
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("turnout-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "turnout/dsn.py",
        "turnout/hostside/main.py",
        "turnout/operations/compose.py",
        "turnout/facts/compose.py",
        "turnout/facts/postgres.py",
    ):
        assert module in names
    assert not any(name.startswith(("operations/", "facts/", "tests/")) for name in names)

    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(installed)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert all(line.startswith(str(installed)) for line in result.stdout.split())
