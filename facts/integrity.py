"""Facts about the content of an assets tarball (the sha256 manifest the cutover keeps)."""

from pyinfra.api import StringCommand

from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class TarballManifest(HostsideFact):
    """
    Path → sha256 and size of every regular file of an assets tarball, named as the swap
    extracts it under the assets directory. With ``known_stat`` (a manifest's ``tarball_stat``)
    an unchanged tarball (same device, inode, size and mtime) is not read: ``unchanged`` True.

    .. code:: python

        from turnout.facts.integrity import TarballManifest
        manifest = host.get_fact(TarballManifest, tarball="/srv/backups/app.data.tar.gz")
        # {"ok": True, "tarball": "/srv/backups/app.data.tar.gz", "tarball_stat": "5e1f…",
        #  "unchanged": False, "count": 600, "bytes": 81234,
        #  "files": {"ugc/1/img.bin": {"sha256": "9f2c…", "size": 128}, …}}
    """

    def command(
        self, tarball: str, known_stat: str | None = None, strip_components: int = 0
    ) -> StringCommand:
        params = {
            "tarball": tarball,
            "known_stat": known_stat,
            "strip_components": strip_components,
        }
        return hostside_command("tarball_manifest", params)
