"""A pyinfra inventory's hosts as testinfra hosts, and the small probe the checks run on them.

The inventory is loaded as pyinfra's CLI loads it (``load_hosts``), so a host's data is what a
deploy sees: the host's own data over ``group_data/<group>.py`` (its groups:
the inventory's list names and the file's name) over ``group_data/all.py``, with ``--data``
overrides on top. Each SSH host gets an ``ssh_config`` block of its own (``ssh_hostname``,
``ssh_port``, ``ssh_user``, ``ssh_key``) with ``StrictHostKeyChecking yes`` and
``UserKnownHostsFile`` the pinned ``ssh_known_hosts_file``: the checks never accept an unknown
host key. ``@local`` is testinfra's local backend.
"""

import ast
import base64
import fnmatch
import json
import re
import runpy
import shlex
import signal
import zlib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SSH_PASSTHROUGH = {  # pyinfra data key -> ssh_config keyword
    "ssh_hostname": "HostName",
    "ssh_port": "Port",
    "ssh_user": "User",
    "ssh_key": "IdentityFile",
    "ssh_known_hosts_file": "UserKnownHostsFile",
}


class InventoryProblem(ValueError):
    """The inventory cannot be turned into testinfra hosts; the message says why."""


@dataclass
class CutoverHost:
    name: str
    groups: list[str]
    data: dict = field(repr=False)


def parse_cli_value(value: str):
    """A ``--data`` value as pyinfra's CLI parses it: true/false, an int, JSON, else the text."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_data_option(items: list[str]) -> dict:
    """``--data KEY=VALUE`` items, parsed as pyinfra parses them."""
    data = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InventoryProblem(f"--data {item!r}: expected KEY=VALUE")
        data[key] = parse_cli_value(value)
    return data


def is_group(key: str, value) -> bool:
    """A module-level name of an inventory that pyinfra takes as a group: a list (or a
    ``(hosts, data)`` tuple) of host names or ``(name, data)`` tuples, not ``_private``."""
    if key.startswith("_"):
        return False
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        value = value[0]
    elif not isinstance(value, list):
        return False
    return isinstance(value, list | tuple) and all(isinstance(i, str | tuple) for i in value)


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def group_data_files(folders: list[Path]) -> dict[str, dict]:
    """``<folder>/<group>.py`` files' names, as pyinfra reads them (imports and dunder names left
    out; ``__all__`` decides when set); a later folder's values win."""
    merged: dict[str, dict] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py")):
            attrs = runpy.run_path(str(path))
            keys = attrs.get("__all__") or [k for k in attrs if k not in imported_names(path)]
            data = {k: v for k, v in attrs.items() if k in keys and not k.startswith("__")}
            merged.setdefault(path.stem, {}).update(data)
    return merged


def load_hosts(
    inventory: str, override_data: dict | None = None, cwd: str | None = None
) -> list[CutoverHost]:
    """The inventory's hosts with their data merged as pyinfra merges it (``pyinfra_cli``'s
    inventory loader, whose import would monkey-patch this process with gevent): ``--data``
    over the host's own data over its groups' data (in-file group data, then
    ``group_data/<group>.py`` from the working directory and the inventory's directory; a later
    group wins) over ``all``. A host's groups are the lists naming it and the file's name."""
    path = Path(inventory)
    if not path.is_file():
        raise InventoryProblem(f"--inventory {inventory}: no such file")
    # An inventory may install turnout's signal handlers (turnout.inventory): not in pytest.
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        attrs = runpy.run_path(str(path))
    except Exception as exc:  # an inventory that cannot load says why, in one line
        raise InventoryProblem(f"--inventory {inventory}: {type(exc).__name__}: {exc}") from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    groups = {}
    for key, value in attrs.items():
        if is_group(key, value):
            hosts, data = value if isinstance(value, tuple) else (value, {})
            groups[key] = (list(hosts), dict(data))

    def host_name(item) -> str:
        return item[0] if isinstance(item, tuple) else item

    all_hosts, all_data = groups.pop("all", (None, {}))
    if all_hosts is None:
        all_hosts = []
        for hosts, _ in groups.values():
            all_hosts += [host_name(h) for h in hosts if host_name(h) not in all_hosts]
    groups.setdefault(path.stem, ([host_name(h) for h in all_hosts], {}))
    cwd_path = Path(cwd or Path.cwd()).resolve()
    folders = [cwd_path / "group_data"]
    if path.parent.resolve() != cwd_path:
        folders.append(path.parent.resolve() / "group_data")
    extra = group_data_files(folders)
    all_data = {**all_data, **extra.pop("all", {})}
    for name, (_, data) in groups.items():
        data.update(extra.get(name, {}))
    result = []
    for item in all_hosts:
        name = host_name(item)
        member_of = [g for g, (hosts, _) in groups.items() if name in map(host_name, hosts)]
        data = dict(all_data)
        for group in member_of:
            data.update(groups[group][1])
        for hosts, _ in [(all_hosts, {}), *groups.values()]:
            for entry in hosts:
                if isinstance(entry, tuple) and entry[0] == name:
                    data.update(entry[1])
        data.update(override_data or {})
        result.append(CutoverHost(name, member_of, data))
    return result


def limit_hosts(hosts: list[CutoverHost], patterns: list[str]) -> list[CutoverHost]:
    """Hosts whose name or one of whose groups matches a pattern (globs, like ``pyinfra
    --limit``); all hosts without patterns."""
    if not patterns:
        return hosts
    return [
        host
        for host in hosts
        if any(fnmatch.fnmatch(n, p) for p in patterns for n in [host.name, *host.groups])
    ]


def ssh_alias(name: str) -> str:
    return "turnout-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def ssh_config_block(name: str, data: dict, control_dir: str | None = None) -> str:
    """The ``ssh_config`` block for one pyinfra SSH host: its address, port, user, key and
    pinned ``known_hosts``, host keys checked strictly, no prompt ever."""
    if data.get("ssh_password"):
        raise InventoryProblem(f"{name}: ssh_password is not supported; use a key (ssh_key)")
    values = {"ssh_hostname": name, **{k: data[k] for k in SSH_PASSTHROUGH if data.get(k)}}
    lines = [f"Host {ssh_alias(name)}"]
    for key, keyword in SSH_PASSTHROUGH.items():
        if key in values:
            lines.append(f"    {keyword} {ssh_config_value(str(values[key]))}")
    if "ssh_key" in values:
        lines.append("    IdentitiesOnly yes")
    lines += [
        "    StrictHostKeyChecking yes",
        "    BatchMode yes",
        "    ForwardAgent no",
        "    ConnectTimeout 15",
    ]
    if control_dir:
        lines.append(f"    ControlPath {ssh_config_value(control_dir)}/%C")
    return "\n".join(lines) + "\n"


def ssh_config_value(value: str) -> str:
    if any(c in value for c in '"\n'):
        raise InventoryProblem(f"ssh_config value {value!r} holds a quote or newline")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def to_testinfra(host: CutoverHost, workdir: Path) -> tuple[str, dict]:
    """(testinfra hostspec, get_host keyword arguments) for one inventory host; for an SSH host
    writes ``<workdir>/ssh_config``'s block (the file is shared by all hosts)."""
    if host.name == "@local":
        return "local://", {}
    if host.name.startswith("@"):
        raise InventoryProblem(f"{host.name}: only @local and SSH hosts can be checked")
    workdir.mkdir(parents=True, exist_ok=True)
    control = workdir / "cm"
    control.mkdir(mode=0o700, exist_ok=True)
    config = workdir / "ssh_config"
    with open(config, "a") as handle:
        handle.write(ssh_config_block(host.name, host.data, str(control)))
    return f"ssh://{ssh_alias(host.name)}", {"ssh_config": str(config), "controlpersist": 30}


def settings_of(data: dict):
    """turnout's settings from the host data (validated; keys turnout does not know, such as
    ``cutover_services``, are left to the checks)."""
    from turnout.settings import load_settings, unknown_keys  # noqa: PLC0415

    unknown = set(unknown_keys(data))
    return load_settings({k: v for k, v in data.items() if k not in unknown})


def service_list(value) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


# The probe: one small Python program run by the host's Python (``hostside_python``), stdlib only
# (psycopg for ``counts`` without a compose db). It prints one JSON answer; it never prints a DSN.
PROBE = r"""
import json, os, sys, time, urllib.error, urllib.request

def health(p):
    try:
        with urllib.request.urlopen(p["url"], timeout=p.get("timeout", 10)) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw[:300].decode("utf-8", "replace")
    return {"status": status, "body": body}

def started(root, name):
    # When a run started: its run.json's started_at, else the time run.json was written (as
    # turnout's RunRecords orders runs: a pinned name like "itest" says nothing about time).
    path = os.path.join(root, name, "run.json")
    try:
        with open(path) as handle:
            record = json.load(handle)
        if isinstance(record, dict) and record.get("started_at"):
            return record["started_at"]
    except (OSError, ValueError):
        pass
    try:
        stamp = os.stat(path).st_mtime
    except OSError:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))

def runs(p):
    root = p["root"]
    if not os.path.isdir(root):
        return {"runs": None}
    names = [n for n in os.listdir(root) if not n.startswith(".")]
    names = [n for n in names if os.path.isdir(os.path.join(root, n))]
    return {"runs": sorted(names, key=lambda n: (started(root, n), n))}

def run_dir(p):
    d = p["dir"]
    out = {"exists": os.path.isdir(d), "files": {}}
    if out["exists"]:
        out["mode"] = os.stat(d).st_mode & 0o7777
        for rel in p["files"]:
            path = os.path.join(d, rel)
            try:
                with open(path, encoding="utf-8") as f:
                    out["files"][rel] = json.load(f)
            except FileNotFoundError:
                out["files"][rel] = None
            except ValueError as e:
                out["files"][rel] = {"unreadable": str(e)}
    return out

def assets(p):
    d = p["dir"].rstrip("/") or "/"
    parent, name = os.path.split(d)
    out = {"is_dir": os.path.isdir(d) and not os.path.islink(d), "files": 0}
    prefix = "." + name + ".staging-"
    listed = os.listdir(parent) if os.path.isdir(parent) else []
    out["staging"] = sorted(n for n in listed if n.startswith(prefix))
    if out["is_dir"]:
        for top, dirs, names in os.walk(d):
            for n in names:
                path = os.path.join(top, n)
                out["files"] += os.path.isfile(path) and not os.path.islink(path)
    return out

def dsn_of(p):
    import re
    dsn = os.environ.get(p["dsn_env"])
    if not dsn:
        if not p.get("env_file"):
            return None, f"{p['dsn_env']} is not set and there is no env_file"
        dsn = read_env_file(p["env_file"]).get(p["dsn_env"])
    if not dsn:
        return None, f"{p['dsn_env']} is not set in the environment or {p['env_file']}"
    return re.sub(r"^(postgres|postgresql)\+\w+://", "postgresql://", dsn.strip()), None

def counts(p):
    import psycopg
    dsn, why = dsn_of(p)
    if why:
        return {"error": why}
    secret = psycopg.conninfo.conninfo_to_dict(dsn).get("password") or "\0"
    q = lambda s: '"' + s.replace('"', '""') + '"'
    try:
        with psycopg.connect(dsn, connect_timeout=15) as conn:
            out = {}
            for name, schema, table in p["tables"]:
                row = conn.execute(f"SELECT count(*) FROM {q(schema)}.{q(table)}").fetchone()
                out[name] = row[0]
            return {"counts": out}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}".replace(secret, "***")}

def digests(p):
    # The queries come from turnout (turnout.hostside.integrity), the server computes them.
    import psycopg
    dsn, why = dsn_of(p)
    if why:
        return {"error": why}
    secret = psycopg.conninfo.conninfo_to_dict(dsn).get("password") or "\0"
    try:
        with psycopg.connect(dsn, connect_timeout=15) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for statement in p["settings"]:
                conn.execute(statement)
            return {"digests": {n: conn.execute(q).fetchone()[0] for n, q in p["queries"]}}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}".replace(secret, "***")}

def asset_hashes(p):
    import hashlib
    root = p["dir"].rstrip("/") or "/"
    files = {}
    for top, dirs, names in os.walk(root):
        for n in names:
            path = os.path.join(top, n)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            digest, size = hashlib.sha256(), 0
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            files[os.path.relpath(path, root)] = {"sha256": digest.hexdigest(), "size": size}
    return {"files": files}

params = json.loads(sys.argv[1])
print(json.dumps(globals()[params.pop("action")](params)))
"""


def probe_command(python: str, action: str, **params) -> str:
    """The shell command that runs the probe's ``action`` with the host's Python. The program
    travels compressed in argv (no secret in it, nor in the params)."""
    source = PROBE
    if action in ("counts", "digests"):  # the .env read exactly as compose reads it
        envfile = (REPO / "turnout" / "hostside" / "envfile.py").read_text()
        source = envfile + "\n" + PROBE
    packed = base64.b64encode(zlib.compress(source.encode(), 9)).decode()
    loader = f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{packed}')))"
    return shlex.join([python, "-c", loader, json.dumps({"action": action, **params})])
