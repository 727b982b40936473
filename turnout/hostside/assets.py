"""Host-side asset actions: sample the asset paths a database references and check them on this
host's asset tree (S1.5), and mirror an asset tree with rsync (S1.3).

Readability is judged as the user running the check. Root reads any file whatever its mode, while
the app's containers usually run as an unprivileged user: so when the check runs as root, an
asset must also have at least one read bit set (``r`` for owner, group or other) to count as
readable — a file or directory with mode 000 is reported unreadable. Files are proved readable by
reading one byte (discarded: no content leaves the host), directories by listing one entry.

Paths stored in the database are container paths under ``prefix`` (``/app/.data/…``); each maps
to ``assets_dir + path[len(prefix):]``. A path with a ``..`` segment is never mapped (it could
escape ``assets_dir``): it counts as outside the prefix.

    python -c 'from turnout.remote import hostside_command as c
    print(c("rsync_plan", {"source": "/srv/old", "dest": "/srv/new"}).get_raw_value())' | sh
"""

import os
import re
import stat

from turnout.hostside.base import HostsideError, params_dsn, run_tool
from turnout.hostside.progress import (
    Ticker,
    interval_of,
    rsync_line,
    rsync_progress,
    without_progress,
)

ASSET_EXAMPLES_MAX = 5
ASSET_LIST_MAX = 20
# A ".." segment anywhere in a path (POSIX regular expression, as PostgreSQL's ``~``).
ASSET_TRAVERSAL_RE = r"(^|/)\.\.(/|$)"
ASSET_READ_BITS = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


# Paths ------------------------------------------------------------------------------------------


def asset_prefix_norm(prefix: str) -> str:
    """The prefix without trailing slashes ("/" becomes "")."""
    return prefix.rstrip("/")


def asset_is_inside(path: str, prefix: str) -> bool:
    """Whether a DB path lies under ``prefix`` (the prefix itself included) with no ``..``
    segment. ``/app/.data2/x`` is not under ``/app/.data``."""
    base = asset_prefix_norm(prefix)
    if "\x00" in path or not (path == base or path.startswith(base + "/")):
        return False
    return ".." not in path[len(base) :].split("/")


def asset_map_path(path: str, prefix: str, assets_dir: str) -> str | None:
    """The host path of a DB path: ``assets_dir + path[len(prefix):]`` (a trailing slash is
    kept, it marks a directory); None when the path is not under the prefix."""
    if not asset_is_inside(path, prefix):
        return None
    rest = path[len(asset_prefix_norm(prefix)) :]
    return (assets_dir.rstrip("/") + rest) or "/"


def asset_mode_readable(mode: int, euid: int) -> bool:
    """As root, require a read bit (root could read a 000 file the app cannot)."""
    return euid != 0 or bool(mode & ASSET_READ_BITS)


def asset_check(host_path: str) -> str:
    """``"ok"``, ``"missing"`` or ``"unreadable"`` for one host path. A directory must be
    listable, a regular file must yield its first byte; anything else is unreadable."""
    try:
        st = os.stat(host_path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "unreadable"
    is_dir = stat.S_ISDIR(st.st_mode)
    if not (is_dir or stat.S_ISREG(st.st_mode)):
        return "unreadable"
    if not asset_mode_readable(st.st_mode, os.geteuid()) or not os.access(host_path, os.R_OK):
        return "unreadable"
    try:
        if is_dir:
            with os.scandir(host_path) as entries:
                next(entries, None)
        else:
            fd = os.open(host_path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                os.read(fd, 1)
            finally:
                os.close(fd)
    except OSError:
        return "unreadable"
    return "ok"


def asset_quotas(available: list[int], total: int) -> list[int]:
    """Split ``total`` sample slots evenly across columns, none beyond what a column has; slots a
    small column cannot use go to the others. Deterministic (earlier columns get the remainder)."""
    quotas = [0] * len(available)
    remaining = max(0, total)
    open_columns = [i for i, count in enumerate(available) if count > 0]
    while remaining > 0 and open_columns:
        share, extra = divmod(remaining, len(open_columns))
        if share == 0:
            for i in open_columns[:extra]:
                quotas[i] += 1
            break
        for i in open_columns:
            take = min(share, available[i] - quotas[i])
            quotas[i] += take
            remaining -= take
        open_columns = [i for i in open_columns if quotas[i] < available[i]]
    return quotas


def asset_parse_column(spec: object) -> tuple[str | None, str, str]:
    """``table.column`` or ``schema.table.column`` → (schema or None, table, column)."""
    parts = spec.split(".") if isinstance(spec, str) else []
    if len(parts) not in (2, 3) or not all(parts):
        raise HostsideError(
            f"asset path column {spec!r} must be written table.column or schema.table.column"
        )
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return parts[0], parts[1], parts[2]


# asset_sample -----------------------------------------------------------------------------------


def asset_sample_params(params: dict) -> dict:
    if not isinstance(params.get("dsn_env"), str) or not params["dsn_env"]:
        raise HostsideError("dsn_env must name the variable holding the DSN on this host")
    columns = params.get("columns")
    if not isinstance(columns, list | tuple) or not columns:
        raise HostsideError("columns must be a non-empty list of table.column names")
    specs = [asset_parse_column(spec) for spec in columns]
    prefix = params.get("prefix", "/app/.data")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise HostsideError(f"prefix must be an absolute path like /app/.data, got {prefix!r}")
    assets_dir = params.get("assets_dir")
    if not isinstance(assets_dir, str) or not assets_dir.startswith("/"):
        raise HostsideError(f"assets_dir must be an absolute host path, got {assets_dir!r}")
    size, seed = params.get("sample_size", 50), params.get("seed", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise HostsideError(f"sample_size must be a non-negative integer, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise HostsideError(f"seed must be an integer, got {seed!r}")
    return {
        "specs": specs,
        "prefix": prefix,
        "assets_dir": assets_dir,
        "sample_size": size,
        "seed": seed,
    }


def asset_resolve_column(conn, spec: tuple[str | None, str, str], database: str) -> tuple:
    """(schema, table, column) as they exist in the database, resolving an unqualified table
    through the search_path; a clear error when the table or column is absent."""
    schema, table, column = spec
    relation = (
        "quote_ident(%(schema)s) || '.' || quote_ident(%(table)s)"
        if schema
        else "quote_ident(%(table)s)"
    )
    row = conn.execute(
        "SELECT n.nspname, c.relname, a.attname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
        "  AND a.attnum > 0 AND NOT a.attisdropped"
        f" WHERE c.oid = to_regclass({relation}) AND a.attname = %(column)s",
        {"schema": schema, "table": table, "column": column},
    ).fetchone()
    if row is None:
        name = ".".join(part for part in spec if part)
        raise HostsideError(f"column {name} does not exist in {database}")
    return row


def asset_column_queries(schema: str, table: str, column: str) -> dict:
    """The three queries run for one column: counts, examples outside the prefix, the sample."""
    from psycopg import sql

    value = sql.SQL("({})::text").format(sql.Identifier(column))
    source = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    inside = sql.SQL(
        "({v} = %(base)s OR left({v}, %(dirlen)s) = %(dir)s) AND {v} !~ %(traversal)s"
    ).format(v=value)
    fields = {"v": value, "t": source, "inside": inside}
    return {
        "counts": sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE NOT ({inside})) FROM {t} WHERE {v} IS NOT NULL"
        ).format(**fields),
        "outside": sql.SQL(
            "SELECT {v} FROM {t} WHERE {v} IS NOT NULL AND NOT ({inside}) ORDER BY 1 LIMIT %(n)s"
        ).format(**fields),
        "sample": sql.SQL(
            "SELECT {v} FROM {t} WHERE {v} IS NOT NULL AND {inside}"
            " ORDER BY md5({v} || %(seed)s), 1 LIMIT %(n)s"
        ).format(**fields),
    }


def action_asset_sample(params: dict) -> dict:
    """Check the asset paths referenced by the database (S1.5): every path under the prefix
    (counted over all rows, on the server), and a seeded sample readable on this host."""
    import psycopg

    options = asset_sample_params(params)
    prefix, assets_dir = options["prefix"], options["assets_dir"]
    if not os.path.isdir(assets_dir):
        raise HostsideError(
            f"assets directory {assets_dir} does not exist on this host; set assets_dir to the "
            f"host directory mounted at {prefix}"
        )
    dsn = params_dsn(params)
    base = asset_prefix_norm(prefix)
    values = {
        "base": base,
        "dir": base + "/",
        "dirlen": len(base) + 1,
        "traversal": ASSET_TRAVERSAL_RE,
    }
    try:
        conn = psycopg.connect(dsn, connect_timeout=int(params.get("connect_timeout", 10)))
    except psycopg.Error as error:
        raise HostsideError(f"cannot connect with {params['dsn_env']}: {error}") from None
    columns: dict[str, dict] = {}
    examples: list[str] = []
    sampled: list[str] = []
    database = "the database"
    with conn:
        # One consistent, read-only snapshot for every query.
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            database = conn.execute("SELECT current_database()").fetchone()[0]
            resolved = []
            for spec in options["specs"]:
                schema, table, column = asset_resolve_column(conn, spec, database)
                key = f"{schema}.{table}.{column}"
                if key not in columns:
                    resolved.append((key, asset_column_queries(schema, table, column)))
                    columns[key] = {"rows": 0, "outside_prefix": 0, "sampled": 0}
            for key, queries in resolved:
                rows, outside = conn.execute(queries["counts"], values).fetchone()
                columns[key].update(rows=rows, outside_prefix=outside)
                if outside and len(examples) < ASSET_EXAMPLES_MAX:
                    wanted = {**values, "n": ASSET_EXAMPLES_MAX - len(examples)}
                    found = conn.execute(queries["outside"], wanted).fetchall()
                    examples.extend(row[0][:300] for row in found)
            available = [
                columns[key]["rows"] - columns[key]["outside_prefix"] for key, _ in resolved
            ]
            quotas = asset_quotas(available, options["sample_size"])
            for (key, queries), quota in zip(resolved, quotas, strict=True):
                if quota:
                    wanted = {**values, "n": quota, "seed": f":{options['seed']}"}
                    found = [row[0] for row in conn.execute(queries["sample"], wanted)]
                    columns[key]["sampled"] = len(found)
                    sampled.extend(found)
        except psycopg.Error as error:
            raise HostsideError(f"cannot sample asset paths in {database}: {error}") from None
    missing: list[str] = []
    unreadable: list[str] = []
    for path in sampled:
        host_path = asset_map_path(path, prefix, assets_dir)
        verdict = "unreadable" if host_path is None else asset_check(host_path)
        if verdict == "missing":
            missing.append(path)
        elif verdict == "unreadable":
            unreadable.append(path)
    return {
        "columns": columns,
        "outside_prefix_examples": examples,
        "checked": len(sampled),
        "missing": missing[:ASSET_LIST_MAX],
        "unreadable": unreadable[:ASSET_LIST_MAX],
        "missing_count": len(missing),
        "unreadable_count": len(unreadable),
    }


# rsync ------------------------------------------------------------------------------------------

# One itemized change (``--itemize-changes``): YXcstpoguax, a space, the name.
RSYNC_ITEM_RE = re.compile(r"^([<>ch.])([fdLDS])(.{9}) (.+)$")
RSYNC_DELETE_RE = re.compile(r"^\*deleting +(.+)$")
RSYNC_FILES_RE = re.compile(r"^Number of files: (\d+)")
RSYNC_BYTES_RE = re.compile(r"^Total transferred file size: (\d+)")
RSYNC_EXIT_RE = re.compile(r"^rsync (?:error|warning): .*\(code (\d+)\)")
# Exit codes that mean an incomplete mirror (turned into failures with a clear reason).
RSYNC_PARTIAL_CODES = (23, 24, 25)


def rsync_is_remote(location: str) -> bool:
    """rsync's rule: ``rsync://…`` or a colon before the first slash (``host:path``)."""
    return location.startswith("rsync://") or ":" in location.split("/", 1)[0]


def rsync_parse(output: str) -> dict:
    """Counts from ``rsync -a --itemize-changes --stats --no-human-readable`` output:
    ``source_entries`` (entries of the source, its root excluded), ``add`` (new files,
    directories, links…), ``change`` (content or attributes), ``delete``, ``transfer_bytes``;
    ``add_files`` and ``change_files`` count the regular files among them."""
    counts = {
        "source_entries": 0,
        "add": 0,
        "change": 0,
        "delete": 0,
        "transfer_bytes": 0,
        "add_files": 0,
        "change_files": 0,
    }
    for line in output.splitlines():
        if RSYNC_DELETE_RE.match(line):
            counts["delete"] += 1
            continue
        item = RSYNC_ITEM_RE.match(line)
        if item:
            update, kind, attributes = item.group(1), item.group(2), item.group(3)
            if attributes == "+" * 9:
                counts["add"] += 1
                counts["add_files"] += kind == "f"
            elif update != "." or attributes.strip(" ."):
                counts["change"] += 1
                counts["change_files"] += kind == "f"
            continue
        files = RSYNC_FILES_RE.match(line)
        if files:
            counts["source_entries"] = max(0, int(files.group(1)) - 1)
            continue
        size = RSYNC_BYTES_RE.match(line)
        if size:
            counts["transfer_bytes"] = int(size.group(1))
    return counts


def rsync_exit_code(output: str) -> int:
    """rsync's exit code for a run run_tool accepted: rsync ends every non-zero exit it controls
    with ``rsync error|warning: … (code N)``; no such line means success."""
    for line in reversed(output.splitlines()):
        found = RSYNC_EXIT_RE.match(line.strip())
        if found:
            return int(found.group(1))
    return 0


def rsync_reason(output: str) -> str:
    """The first line saying what went wrong (``rsync: …``, ``cannot delete …``)."""
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("rsync: ") or text.startswith("cannot ") or "failed:" in text:
            return text[:300]
    return ""


def rsync_failure(code: int, output: str, options: dict) -> str:
    """One sentence for an rsync exit that left the mirror incomplete."""
    reason = rsync_reason(output)
    detail = f": {reason}" if reason else ""
    where = f"{options['source']} to {options['dest']}"
    if code == 23:
        return f"rsync exited 23 (partial transfer, some files not transferred) {where}{detail}"
    if code == 24:
        return (
            f"rsync exited 24 (source files vanished during the transfer) {where}; the mirror is "
            f"incomplete, rerun when nothing writes to the source{detail}"
        )
    if code == 25:
        return (
            f"rsync exited 25: it stopped deleting at --max-delete={options['max_delete']} "
            f"mirroring {where}; the mirror is incomplete{detail}"
        )
    return f"rsync exited {code} mirroring {where}{detail}"


def rsync_options(params: dict) -> dict:
    """Validated rsync parameters; the source gets a trailing slash (mirror its contents)."""
    source, dest = params.get("source"), params.get("dest")
    if not isinstance(source, str) or not source.strip() or source.startswith("-"):
        raise HostsideError(
            f"rsync source must be a path or host:path not starting with '-', got {source!r}"
        )
    if any(ord(char) < 32 for char in source):
        raise HostsideError("rsync source must not contain control characters")
    if rsync_is_remote(source) and source.endswith(":"):
        raise HostsideError(f"rsync source {source} names a host but no path; write host:/path")
    if not isinstance(dest, str) or not dest.startswith("/") or dest.rstrip("/") == "":
        raise HostsideError(f"rsync dest must be an absolute path other than /, got {dest!r}")
    if any(ord(char) < 32 for char in dest):
        raise HostsideError("rsync dest must not contain control characters")
    delete = params.get("delete", False)
    if not isinstance(delete, bool):
        raise HostsideError(f"delete must be true or false, got {delete!r}")
    excludes = params.get("excludes") or []
    if not isinstance(excludes, list | tuple) or not all(
        isinstance(item, str) and item and not any(ord(char) < 32 for char in item)
        for item in excludes
    ):
        raise HostsideError("excludes must be a list of non-empty rsync patterns")
    max_delete = params.get("max_delete")
    if max_delete is not None and (
        isinstance(max_delete, bool) or not isinstance(max_delete, int) or max_delete < 0
    ):
        raise HostsideError(f"max_delete must be a non-negative integer or null: {max_delete!r}")
    rsh = params.get("rsh")
    if rsh is not None and (not isinstance(rsh, str) or any(ord(char) < 32 for char in rsh)):
        raise HostsideError(f"rsh must be one line of text or null, got {rsh!r}")
    return {
        "rsh": rsh,
        "source": source,
        "src": source.rstrip("/") + "/" if source.rstrip("/") else "/",
        "dest": dest,
        "dst": dest.rstrip("/") + "/",
        "delete": delete,
        "excludes": list(excludes),
        "max_delete": max_delete,
    }


def rsync_check_source(options: dict) -> None:
    """A local source must be an existing directory (a remote one is checked by rsync)."""
    source = options["source"]
    if rsync_is_remote(source):
        return
    if not os.path.exists(source):
        raise HostsideError(f"rsync source {source} does not exist on this host")
    if not os.path.isdir(source):
        raise HostsideError(f"rsync source {source} is not a directory")


def rsync_run(
    options: dict,
    dry_run: bool,
    log_path: str | None,
    timeout: float,
    interval: float | None = None,
) -> dict:
    """Run rsync (``-a --itemize-changes --stats``) and return the parsed counts; a failure or
    an incomplete mirror (exit 23/24/25) raises with a clear reason. With ``interval`` (not in
    a dry run), ``--info=progress2`` is added and its last record printed every ``interval``
    seconds; its records are left out of the log and of the parsed output."""
    argv = ["rsync", "-a", "--itemize-changes", "--stats", "--no-human-readable"]
    if dry_run:
        argv.append("--dry-run")
    elif interval:
        argv.append("--info=progress2")
    if options["delete"]:
        argv.append("--delete")
        if options["max_delete"] is not None and not dry_run:
            argv.append(f"--max-delete={options['max_delete']}")
    argv += [f"--exclude={pattern}" for pattern in options["excludes"]]
    if options.get("temp_dir") and not dry_run:
        # Files are received outside the live tree and renamed into place when complete.
        argv.append(f"--temp-dir={options['temp_dir']}")
    argv += ["--", options["src"], options["dst"]]
    env = {**os.environ, "LC_ALL": "C"}
    # A remote source must never wait for a password on a terminal.
    if options["rsh"]:
        env["RSYNC_RSH"] = f"{options['rsh']} -o BatchMode=yes"
    env.setdefault("RSYNC_RSH", "ssh -o BatchMode=yes")
    recent = {"text": ""}

    def seen(chunk: bytes) -> None:
        recent["text"] = (recent["text"] + chunk.decode("utf-8", "replace"))[-4096:]

    def status(seconds: float) -> str | None:
        progress = rsync_progress(recent["text"])
        return rsync_line(progress, seconds) if progress else None

    with Ticker("rsync", None if dry_run else interval, status, log_path):
        output = run_tool(
            argv,
            env=env,
            log_path=log_path,
            timeout=timeout,
            ok_codes=(0, *RSYNC_PARTIAL_CODES),
            on_output=seen if interval and not dry_run else None,
            clean=without_progress if interval and not dry_run else None,
        )
    code = rsync_exit_code(output)
    if code == 23 and "change_dir" in output and "failed" in output:
        raise HostsideError(
            f"rsync source {options['source']} does not exist or is not readable: "
            f"{rsync_reason(output)}"
        )
    if code:
        raise HostsideError(rsync_failure(code, output, options))
    if not any(RSYNC_FILES_RE.match(line) for line in output.splitlines()):
        # Every complete run prints its statistics: without them, do not trust the exit code.
        last = (rsync_reason(output) or output.strip()[-200:]) or "no output"
        raise HostsideError(f"rsync ended without its statistics ({last})")
    return rsync_parse(output)


def rsync_refusal(options: dict, source_entries: int, deletes: int | None) -> str | None:
    """Why a mirror with ``options`` must not run (None when it may): the one place of the rule.
    With ``--delete``, an empty source is refused (an unmounted or missing source looks empty),
    and so is deleting more than ``max_delete`` entries (``deletes`` None: not known yet)."""
    if not options["delete"]:
        return None
    where = f"{options['source']} to {options['dest']}"
    if source_entries == 0:
        return (
            f"refusing to mirror {where} with --delete: the source is empty (an unmounted or "
            "missing source looks empty); check the source, nothing was changed"
        )
    limit = options["max_delete"]
    if limit is not None and deletes is not None and deletes > limit:
        return (
            f"refusing to mirror {where} with --delete: {deletes} entries would be deleted, more "
            f"than max_delete={limit}; nothing was changed"
        )
    return None


# What ssh says when it cannot reach or trust the remote side (the cause; rsync's own last line
# only says "unexplained error (code 255)").
SSH_FAILURES = (
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "No ED25519 host key is known",
    "Permission denied",
    "Could not resolve hostname",
    "Connection refused",
    "Connection timed out",
    "No route to host",
)


def rsync_transport_reason(output: str) -> str:
    """The line that says why rsync could not run at all: ssh's own complaint when there is one,
    else rsync's first error, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for failure in SSH_FAILURES:  # in order: the most telling first
        for line in lines:
            if failure in line:
                return line[:300]
    return rsync_reason(output) or (lines[-1][:300] if lines else "no output")


def rsync_top_entries(options: dict, timeout: float) -> int:
    """How many entries the top of the source holds (``rsync --list-only --dirs``: one level,
    local or ``host:path`` over the same remote shell); raises when it cannot be listed."""
    argv = ["rsync", "--list-only", "--dirs", "--no-human-readable", "--", options["src"]]
    env = {**os.environ, "LC_ALL": "C"}
    env["RSYNC_RSH"] = f"{options['rsh'] or 'ssh'} -o BatchMode=yes"
    output = run_tool(argv, env=env, timeout=timeout, ok_codes=tuple(range(256)))
    if rsync_exit_code(output):
        raise HostsideError(
            f"rsync source {options['source']} cannot be listed: {rsync_transport_reason(output)}"
        )
    names = [line.rsplit(" ", 1)[-1] for line in output.splitlines() if line.strip()]
    return len([name for name in names if name not in (".", "./")])


def action_rsync_sides(params: dict) -> dict:
    """The two sides of a mirror, cheaply (no tree walk): whether the source exists and how many
    entries its top holds, and whether ``dest`` holds anything yet."""
    options = rsync_options(params)
    rsync_check_source(options)
    entries = rsync_top_entries(options, float(params.get("timeout_s", 120)))
    try:
        dest_empty = not any(True for _ in os.scandir(options["dest"]))
    except FileNotFoundError:
        dest_empty = True
    except NotADirectoryError:
        raise HostsideError(f"rsync dest {options['dest']} is not a directory") from None
    return {
        "source_top_entries": entries,
        "dest_empty": dest_empty,
        "refusal": rsync_refusal(options, entries, None),
    }


def action_rsync_plan(params: dict) -> dict:
    """What mirroring ``source`` into ``dest`` would do (``rsync --dry-run``), as counts."""
    options = rsync_options(params)
    rsync_check_source(options)
    plan = rsync_run(options, True, None, float(params.get("timeout_s", 600)))
    return {**plan, "refusal": rsync_refusal(options, plan["source_entries"], plan["delete"])}


def rsync_temp_dir(dest: str) -> str:
    """Where rsync receives files before renaming them into ``dest``: a sibling of ``dest`` (the
    same filesystem, so the rename is atomic; outside the live tree, so a killed transfer leaves
    nothing in it).

    >>> rsync_temp_dir("/srv/app/data/assets/")
    '/srv/app/data/.assets.turnout-rsync-tmp'
    """
    parent, name = os.path.split(dest.rstrip("/"))
    return os.path.join(parent or "/", f".{name}.turnout-rsync-tmp")


def rsync_fresh_temp_dir(path: str) -> None:
    """An empty 0700 ``path``: what a killed transfer left there is removed first."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)


def action_rsync_mirror(params: dict) -> dict:
    """Mirror ``source`` into ``dest``. With ``delete``, refused when the source is empty (an
    unmounted source looks empty) or would delete more than ``max_delete`` entries; both are
    checked by a dry run first, so a refusal changes nothing. Exit 23/24/25 are failures."""
    options = rsync_options(params)
    rsync_check_source(options)
    log_path = params.get("log_path")
    timeout = float(params.get("timeout_s", 3600))
    if options["delete"]:
        plan = rsync_run(options, True, log_path, timeout)
        refusal = rsync_refusal(options, plan["source_entries"], plan["delete"])
        if refusal:
            raise HostsideError(refusal)
    parent = os.path.dirname(options["dest"].rstrip("/"))
    if parent:
        os.makedirs(parent, exist_ok=True)
    temp_dir = rsync_temp_dir(options["dest"])
    rsync_fresh_temp_dir(temp_dir)
    result = rsync_run(
        {**options, "temp_dir": temp_dir}, False, log_path, timeout, interval_of(params)
    )
    import shutil

    shutil.rmtree(temp_dir, ignore_errors=True)
    return result
