"""Facts about the evidence directory of a run."""

from turnout.evidence import EVIDENCE_SUBDIRS
from turnout.facts.hostside import HostsideFact


class EvidenceDirectory(HostsideFact):
    """
    Whether ``path`` and its ``logs``, ``outputs``, ``src_artifacts`` exist as directories with
    mode 0700.

    .. code:: python

        from turnout.facts.evidence import EvidenceDirectory
        state = host.get_fact(
            EvidenceDirectory, path="/var/lib/turnout/evidence/cutover/20261123T120000Z",
            python="python3",
        )
        # {"ok": True, "paths": {"/var/…/20261123T120000Z": {"type": "dir", "mode": "0700"},
        #                         "/var/…/logs": None, …}}
    """

    action = "path_modes"

    def params(self, path: str) -> dict:
        return {"paths": [path, *(f"{path}/{name}" for name in EVIDENCE_SUBDIRS)]}
