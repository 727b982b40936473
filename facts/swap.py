"""Facts about restoring an assets directory from a tarball by a crash-safe directory swap
(``turnout/hostside/swap.py``): what the restore would do, what the swap back would do. Both are
answered on the host by the host-side program and change nothing there (not even the recovery of
a killed run: they say what it will do).
"""

from pyinfra.api import StringCommand

from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command

SWAP_MAX_MEMBERS = 200_000
SWAP_MAX_MEMBER_BYTES = 8 << 30


class AssetSwapPlan(HostsideFact):
    """
    What restoring ``tarball`` into ``dest`` would do. Every member is checked (only regular
    files and directories; no absolute path, ``..``, link, device or FIFO; at most
    ``max_members``, none above ``max_member_bytes``; the archive complete): a hostile or broken
    tarball is refused here already, in ``refusal``. When the marker says this tarball (same
    sha256; trusted without reading it when its device, inode, size and mtime are unchanged) is
    live, ``up_to_date``. Otherwise, in numbers: files and bytes in the tarball and in the live
    tree, the paths added, removed and changed (the first ``list_max`` of each; a file changes
    when its size or mtime differs), where the live tree will go (``prev``), and a recovery a
    killed run left to do (``recovery``).

    .. code:: python

        from turnout.facts.swap import AssetSwapPlan
        plan = host.get_fact(
            AssetSwapPlan, tarball="/srv/incoming/assets.tar.gz", dest="/srv/app/data/assets",
            marker="/var/lib/turnout/state/assets.json", timestamp="20261123T120000Z",
            strip_components=1,
        )
        # {"ok": True, "up_to_date": False, "refusal": None, "recovery": None,
        #  "tarball_files": 120, "tarball_bytes": 5242880, "live_files": 118,
        #  "live_bytes": 5100000, "added": 3, "removed": 1, "changed": 2,
        #  "added_paths": ["docs/new.pdf", ...], "removed_paths": [...], "changed_paths": [...],
        #  "prev": "/srv/app/data/assets.prev_20261123T120000Z",
        #  "staging": "/srv/app/data/.assets.staging-20261123T120000Z", "free_bytes": ...}
        # or {"ok": True, "refusal": "assets tarball /srv/incoming/assets.tar.gz refused: member
        #     \\"../etc/passwd\\" escapes the target; nothing was changed", ...}
    """

    def command(
        self,
        tarball: str,
        dest: str,
        marker: str,
        timestamp: str,
        strip_components: int = 0,
        max_members: int = SWAP_MAX_MEMBERS,
        max_member_bytes: int = SWAP_MAX_MEMBER_BYTES,
        list_max: int = 10,
    ) -> StringCommand:
        params = {
            "tarball": tarball,
            "dest": dest,
            "marker": marker,
            "timestamp": timestamp,
            "strip_components": strip_components,
            "max_members": max_members,
            "max_member_bytes": max_member_bytes,
            "list_max": list_max,
        }
        return hostside_command("swap_plan", params)


class AssetSwapBackPlan(HostsideFact):
    """
    What swapping ``dest`` back would do: which tree becomes live (``prev``: the one named, else
    the one the marker names, else the newest ``<dest>.prev_*``), where the live tree goes
    (``<dest>.failed_<timestamp>``), the files and bytes of both, a recovery a killed run left
    to do, and ``up_to_date`` when the last change already was a swap back (to ``prev``).

    .. code:: python

        from turnout.facts.swap import AssetSwapBackPlan
        plan = host.get_fact(
            AssetSwapBackPlan, dest="/srv/app/data/assets",
            marker="/var/lib/turnout/state/assets.json", timestamp="20261123T130000Z",
        )
        # {"ok": True, "up_to_date": False, "refusal": None, "recovery": None,
        #  "prev": "/srv/app/data/assets.prev_20261123T120000Z",
        #  "failed": "/srv/app/data/assets.failed_20261123T130000Z",
        #  "live_files": 120, "live_bytes": 5242880, "prev_files": 118, "prev_bytes": 5100000}
    """

    def command(
        self, dest: str, marker: str, timestamp: str, prev: str | None = None
    ) -> StringCommand:
        params = {"dest": dest, "marker": marker, "timestamp": timestamp, "prev": prev}
        return hostside_command("swap_back_plan", params)
