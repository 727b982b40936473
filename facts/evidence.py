"""Facts about the evidence directory of a run."""

from pyinfra.api import StringCommand

from turnout.evidence import EVIDENCE_SUBDIRS
from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class EvidenceDirectory(HostsideFact):
    """
    Whether ``path`` and its ``logs``, ``outputs``, ``src_artifacts`` (and the ``parents`` given:
    the evidence root and the task's directory) exist as directories with mode 0700.

    .. code:: python

        from turnout.facts.evidence import EvidenceDirectory
        state = host.get_fact(
            EvidenceDirectory, path="/var/lib/turnout/evidence/cutover/20261123T120000Z",
        )
        # {"ok": True, "paths": {"/var/…/20261123T120000Z": {"type": "dir", "mode": "0700"},
        #                         "/var/…/logs": None, …}}
    """

    def command(self, path: str, parents: tuple[str, ...] = ()) -> StringCommand:
        paths = [*parents, path, *(f"{path}/{name}" for name in EVIDENCE_SUBDIRS)]
        return hostside_command("path_modes", {"paths": paths})


class FileDigest(HostsideFact):
    """
    sha256 and mode of a file on the host (a kept report, a record), one short call.

    .. code:: python

        from turnout.facts.evidence import FileDigest
        digest = host.get_fact(
            FileDigest, path="/var/lib/turnout/evidence/dry_run/demo/outputs/validate_db.json"
        )
        # {"ok": True, "path": "…", "exists": True, "sha256": "9f2c…", "mode": "0600"}
        # absent: {"ok": True, "path": "…", "exists": False}
    """

    def command(self, path: str) -> StringCommand:
        return hostside_command("file_digest", {"path": path})


class JsonFile(HostsideFact):
    """
    A JSON evidence record on the host (``run.json``, a kept report), read in one short call.

    .. code:: python

        from turnout.facts.evidence import JsonFile
        record = host.get_fact(
            JsonFile, path="/var/lib/turnout/evidence/cutover/20261124T120000Z/run.json"
        )
        # {"ok": True, "path": "…", "exists": True, "data": {"task": "cutover", …}}
        # absent: {"ok": True, "path": "…", "exists": False, "data": None}
    """

    def command(self, path: str) -> StringCommand:
        return hostside_command("read_json", {"path": path})


class TreeStats(HostsideFact):
    """
    How many regular files, and how many bytes, a directory tree holds (symlinks not followed).

    .. code:: python

        from turnout.facts.evidence import TreeStats
        stats = host.get_fact(TreeStats, path="/srv/app/data/assets")
        # {"ok": True, "path": "/srv/app/data/assets", "exists": True, "files": 812,
        #  "bytes": 73400320}
    """

    def command(self, path: str) -> StringCommand:
        return hostside_command("tree_stats", {"path": path})


class RunRecords(HostsideFact):
    """
    The runs of a runbook on the host that left a ``run.json``, oldest first by start time.

    .. code:: python

        from turnout.facts.evidence import RunRecords
        runs = host.get_fact(RunRecords, root="/var/lib/turnout/evidence", task="cutover")
        # {"ok": True, "runs": [{"timestamp": "20261124T120000Z", "run_dir": "…",
        #                        "started_at": "2026-11-24T12:00:03Z", "exit": 0}]}
    """

    def command(self, root: str, task: str) -> StringCommand:
        return hostside_command("run_records", {"root": root, "task": task})
