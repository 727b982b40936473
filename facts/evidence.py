"""Facts about the evidence directory of a run."""

from pyinfra.api import StringCommand

from turnout.evidence import EVIDENCE_SUBDIRS
from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class EvidenceDirectory(HostsideFact):
    """
    Whether ``path`` and its ``logs``, ``outputs``, ``src_artifacts`` exist as directories with
    mode 0700.

    .. code:: python

        from turnout.facts.evidence import EvidenceDirectory
        state = host.get_fact(
            EvidenceDirectory, path="/var/lib/turnout/evidence/cutover/20261123T120000Z",
        )
        # {"ok": True, "paths": {"/var/…/20261123T120000Z": {"type": "dir", "mode": "0700"},
        #                         "/var/…/logs": None, …}}
    """

    def command(self, path: str) -> StringCommand:
        paths = [path, *(f"{path}/{name}" for name in EVIDENCE_SUBDIRS)]
        return hostside_command("path_modes", {"paths": paths})
