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
