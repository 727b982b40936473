"""Facts about asset trees: the paths a database references, checked on the host (S1.5), and
what an rsync mirror would change (S1.3). Both are answered on the host by the host-side program;
the DSN never leaves the host.
"""

from pyinfra.api import StringCommand

from turnout.database import Database, as_database
from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class AssetSample(HostsideFact):
    """
    Checks the asset paths stored in ``columns`` (``table.column`` or ``schema.table.column``):
    over all rows, how many are not under ``prefix`` (a ``..`` segment counts as outside); then a
    sample of up to ``sample_size`` paths, chosen by the server and the same for the same
    ``seed`` and data, split evenly across the columns, each mapped to
    ``assets_dir + path[len(prefix):]`` and checked on the host: it exists and is readable (a file
    yields a byte, a directory lists; as root, a mode without any read bit is unreadable).

    .. code:: python

        from turnout.facts.assets import AssetSample
        sample = host.get_fact(
            AssetSample, database=Database("DATABASE_URL", "/srv/app/.env"),
            columns=["knowledge_materials.storage_path", "gallery_items.storage_dir"],
            assets_dir="/srv/app/data/assets", prefix="/app/.data", sample_size=50, seed=0,
        )
        # {"ok": True,
        #  "columns": {"public.knowledge_materials.storage_path":
        #                  {"rows": 40, "outside_prefix": 0, "sampled": 25}, ...},
        #  "outside_prefix_examples": [], "checked": 50,
        #  "missing": [], "unreadable": [], "missing_count": 0, "unreadable_count": 0}
        # or {"ok": False, "error": "column knowledge_materials.storage_path does not exist in app"}
    """

    def command(
        self,
        database: Database | str,
        columns: list[str] | tuple[str, ...],
        assets_dir: str,
        prefix: str = "/app/.data",
        sample_size: int = 50,
        seed: int = 0,
    ) -> StringCommand:
        params = {
            **as_database(database).params(),
            "columns": list(columns),
            "prefix": prefix,
            "assets_dir": assets_dir,
            "sample_size": sample_size,
            "seed": seed,
        }
        return hostside_command("asset_sample", params)


class RsyncPlan(HostsideFact):
    """
    What ``rsync -a [--delete] <source>/ <dest>/`` would change, from a dry run on the host: the
    *contents* of ``source`` (a host path, or ``host:path`` pulled over ssh) mirrored into ``dest``.

    .. code:: python

        from turnout.facts.assets import RsyncPlan
        plan = host.get_fact(
            RsyncPlan, source="backup@old:/srv/app/data/assets", dest="/srv/app/data/assets",
            delete=False, excludes=["*.tmp"],
        )
        # {"ok": True, "source_entries": 120, "add": 3, "change": 1, "delete": 0,
        #  "transfer_bytes": 52311, "refusal": None}
        # or {"ok": False, "error": "rsync source /srv/old does not exist on this host"}
    """

    def command(
        self,
        source: str,
        dest: str,
        delete: bool = False,
        excludes: list[str] | tuple[str, ...] = (),
        max_delete: int | None = None,
        rsh: str | None = None,
    ) -> StringCommand:
        params = {
            "source": source,
            "dest": dest,
            "delete": delete,
            "excludes": list(excludes),
            "max_delete": max_delete,
            "rsh": rsh,
        }
        return hostside_command("rsync_plan", params)


class RsyncSides(HostsideFact):
    """
    The two sides of a mirror without walking either tree: whether ``source`` (a host path or
    ``host:path`` over ``rsh``) can be listed and how many entries its top holds, and whether
    ``dest`` is empty or missing. The pre-flight's check of the source; the mirror's shortcut
    (an empty destination needs no dry run to know it will change).

    .. code:: python

        from turnout.facts.assets import RsyncSides
        sides = host.get_fact(
            RsyncSides, source="backup@old:/srv/app/data/assets", dest="/srv/app/data/assets",
            rsh="ssh -p 2222",
        )
        # {"ok": True, "source_top_entries": 3, "dest_empty": False, "refusal": None}
        # or {"ok": False, "error": "rsync source /srv/old does not exist on this host"}
    """

    def command(
        self, source: str, dest: str, delete: bool = False, rsh: str | None = None
    ) -> StringCommand:
        params = {"source": source, "dest": dest, "delete": delete, "rsh": rsh}
        return hostside_command("rsync_sides", params)
