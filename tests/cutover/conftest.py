"""Checks of a host after a cutover (SPEC C5), run with testinfra over the deploys' own inventory:

    pytest tests/cutover --inventory inventories/prod.py [--limit NAME|GROUP] [--data KEY=VALUE]
           [--cutover-timestamp TS]

Not part of the default suite (``testpaths`` leaves ``tests/cutover`` out): it checks a real host.
Every test runs once per inventory host (``cutover_hosts.py``: pyinfra's loader, group data
merged, strict host keys). What the checks read from the host's data: ``docker_bin``,
``env_file``, ``compose_file``, ``compose_project``, ``cutover_services`` (default: those of
``db api worker`` the compose file defines; not a turnout setting: give it with ``--data`` or
list it in ``extra_data_keys``), ``hostside_python``, ``base_url``, ``health``,
``health_path``, ``health_status``, ``health_expect``, ``http_timeout_s``, ``assets_dir``,
``evidence_root``, ``db_in_compose``, ``db_service``, ``target_dsn_env``, ``allowed_row_diff``,
``require_exact_counts``, ``cutover_unchecked_tables``. The last cutover's evidence is
``<evidence_root>/cutover/<ts>`` (the latest by start (its run.json), or
``--cutover-timestamp``).
"""

import json
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import testinfra
from cutover_hosts import (
    CutoverHost,
    InventoryProblem,
    limit_hosts,
    load_hosts,
    parse_data_option,
    probe_command,
    settings_of,
    ssh_alias,
    to_testinfra,
)

from turnout.dsn import redact

HOSTS = pytest.StashKey[list]()
WORKDIR = pytest.StashKey[Path]()
RUN_FILES = (
    "run.json",
    "outputs/rowcounts_before.json",
    "outputs/rowcounts_after.json",
    "outputs/assets_after.json",
    "outputs/assets_manifest.json",
    "outputs/table_digests.json",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cutover", "turnout: checks after a cutover")
    group.addoption("--inventory", help="the pyinfra inventory file of the hosts to check")
    group.addoption(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override host data, as pyinfra's --data",
    )
    group.addoption(
        "--limit",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only hosts whose name or group matches (glob), as pyinfra's --limit",
    )
    group.addoption(
        "--cutover-timestamp",
        default=None,
        help="check this cutover run (<evidence_root>/cutover/<TS>) instead of the latest",
    )


def pytest_configure(config: pytest.Config) -> None:
    inventory = config.getoption("--inventory")
    if not inventory and not asked_for(config):
        # Found while collecting a parent directory (``pytest tests``): without an inventory
        # the checks are left out (an empty parameter set is a skip).
        config.stash[HOSTS] = []
        return
    if not inventory:
        raise pytest.UsageError("tests/cutover needs --inventory <pyinfra inventory file>")
    try:
        hosts = load_hosts(inventory, parse_data_option(config.getoption("--data")))
    except InventoryProblem as problem:
        raise pytest.UsageError(str(problem)) from None
    hosts = limit_hosts(hosts, config.getoption("--limit"))
    if not hosts:
        raise pytest.UsageError(f"no host of {inventory} matches --limit")
    config.stash[HOSTS] = hosts
    config.stash[WORKDIR] = Path(tempfile.mkdtemp(prefix="turnout-cutover-"))


def asked_for(config: pytest.Config) -> bool:
    """Whether the command line names this directory or something in it."""
    here = Path(__file__).resolve().parent
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == here or here in path.parents:
            return True
    return False


def pytest_unconfigure(config: pytest.Config) -> None:
    workdir = config.stash.get(WORKDIR, None)
    if workdir is None:
        return
    config_file = workdir / "ssh_config"
    for host in config.stash[HOSTS]:
        if config_file.exists() and not host.name.startswith("@"):
            subprocess.run(  # the connection a check kept open (ControlPersist)
                ["ssh", "-F", str(config_file), "-O", "exit", ssh_alias(host.name)],
                capture_output=True,
                check=False,
                timeout=30,
            )
    shutil.rmtree(workdir, ignore_errors=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        hosts = metafunc.config.stash[HOSTS]
        metafunc.parametrize("cutover_host", hosts, ids=[h.name for h in hosts], scope="session")


class Target:
    """One inventory host as the checks see it: testinfra's host, turnout's settings, the data."""

    def __init__(self, host: CutoverHost, workdir: Path, timestamp: str | None) -> None:
        self.name = host.name
        self.data = host.data
        try:
            self.settings = settings_of(host.data)
        except Exception as exc:  # SettingsError: every problem, one per line
            pytest.fail(f"{self.name}: host data is not valid:\n{exc}", pytrace=False)
        spec, kwargs = to_testinfra(host, workdir)
        self.host = testinfra.get_host(spec, **kwargs)
        self.timestamp = timestamp
        self._run: dict | None = None

    def sh(self, argv: list[str]):
        """Run ``argv`` on the host; a connection failure fails the test with ssh's reason."""
        try:
            return self.host.run(shlex.join(argv))
        except RuntimeError as exc:  # ssh exited 255: could not connect
            pytest.fail(f"{self.name}: cannot run commands on the host: {exc}", pytrace=False)

    def probe(self, action: str, **params) -> dict:
        command = probe_command(self.settings.hostside_python, action, **params)
        try:
            result = self.host.run(command)
        except RuntimeError as exc:
            pytest.fail(f"{self.name}: cannot run commands on the host: {exc}", pytrace=False)
        if result.rc != 0:
            reason = redact(result.stderr.strip())
            pytest.fail(
                f"{self.name}: the probe ({action}) failed with {self.settings.hostside_python}: "
                f"{reason[-500:]}",
                pytrace=False,
            )
        return json.loads(result.stdout)

    def compose_argv(self, *args: str) -> list[str]:
        s = self.settings
        if not s.compose_file:
            pytest.fail(f"{self.name}: compose_file is not set in the host data", pytrace=False)
        argv = [s.docker_bin, "compose"]
        if s.env_file:
            argv += ["--env-file", s.env_file]
        argv += ["-f", s.compose_file]
        if s.compose_project:
            argv += ["-p", s.compose_project]
        return [*argv, *args]

    def last_run(self) -> dict:
        """The last cutover run's directory and evidence files (fails the test if there is
        none): ``{"dir", "mode", "files": {"run.json": …, "outputs/…": …}}``."""
        if self._run is None:
            root = f"{self.settings.evidence_root.rstrip('/')}/cutover"
            timestamp = self.timestamp
            if timestamp is None:
                runs = self.probe("runs", root=root)["runs"]
                if not runs:
                    pytest.fail(f"{self.name}: no cutover run under {root}", pytrace=False)
                timestamp = runs[-1]
            run_dir = f"{root}/{timestamp}"
            found = self.probe("run_dir", dir=run_dir, files=list(RUN_FILES))
            if not found["exists"]:
                pytest.fail(f"{self.name}: no cutover run directory {run_dir}", pytrace=False)
            self._run = {"dir": run_dir, "mode": found["mode"], "files": found["files"]}
        return self._run

    def optional_file(self, rel: str) -> dict | None:
        """An evidence file of the last run that a step writes only where it ran, or None."""
        if self.last_run()["files"].get(rel) is None:
            return None
        return self.run_file(rel)

    def run_file(self, rel: str) -> dict:
        run = self.last_run()
        content = run["files"].get(rel)
        if content is None:
            pytest.fail(f"{self.name}: {run['dir']}/{rel} is missing", pytrace=False)
        if "unreadable" in content:
            pytest.fail(
                f"{self.name}: {run['dir']}/{rel} is not JSON: {content['unreadable']}",
                pytrace=False,
            )
        return content


@pytest.fixture(scope="session")
def targets(pytestconfig: pytest.Config) -> dict[str, Target]:
    return {}


@pytest.fixture(scope="session")
def target(
    cutover_host: CutoverHost, targets: dict[str, Target], pytestconfig: pytest.Config
) -> Target:
    if cutover_host.name not in targets:
        targets[cutover_host.name] = Target(
            cutover_host,
            pytestconfig.stash[WORKDIR],
            pytestconfig.getoption("--cutover-timestamp"),
        )
    return targets[cutover_host.name]
