"""Host-side file actions: modes of paths, directories with a given mode, evidence files."""

import hashlib
import json
import os
import stat
import sys
import tempfile

from turnout.hostside.base import HostsideError


def action_path_modes(params: dict) -> dict:
    """Type and permission bits of each path (``null`` when absent)."""
    result: dict[str, dict | None] = {}
    for path in params["paths"]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            result[path] = None
            continue
        kind = "other"
        if stat.S_ISDIR(st.st_mode):
            kind = "dir"
        elif stat.S_ISREG(st.st_mode):
            kind = "file"
        result[path] = {"type": kind, "mode": f"{stat.S_IMODE(st.st_mode):04o}"}
    return {"paths": result}


def action_make_dirs(params: dict) -> dict:
    """Create each directory (with parents) and set its mode; ``mode`` is an octal string."""
    mode = int(params.get("mode", "0700"), 8)
    for path in params["paths"]:
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
    return {"paths": params["paths"]}


def action_file_digest(params: dict) -> dict:
    """sha256 and mode of the file at ``path`` (``exists`` false when there is none)."""
    path = params["path"]
    try:
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        mode = f"{stat.S_IMODE(os.stat(path).st_mode):04o}"
    except FileNotFoundError:
        return {"path": path, "exists": False}
    return {"path": path, "exists": True, "sha256": digest, "mode": mode}


def action_write_file(params: dict) -> dict:
    """Write stdin to ``path`` (mode 0600) through a temporary file, fsync and rename; a failed
    write (a full evidence filesystem) leaves the old file and fails with one line."""
    path = params["path"]
    data = sys.stdin.buffer.read()
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    except OSError as error:
        raise HostsideError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as error:
        os.unlink(tmp)
        raise HostsideError(f"cannot write {path}: {error.strerror}") from None
    return {"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def action_read_json(params: dict) -> dict:
    """The JSON document at ``path`` (an evidence record): ``data`` None when absent; a file that
    is not JSON answers ``problem``."""
    path = params["path"]
    try:
        with open(path, encoding="utf-8") as handle:
            return {"path": path, "exists": True, "data": json.load(handle)}
    except FileNotFoundError:
        return {"path": path, "exists": False, "data": None}
    except (OSError, ValueError) as error:
        return {"path": path, "exists": True, "data": None, "problem": str(error)}


def action_tree_stats(params: dict) -> dict:
    """Regular files and their bytes under directory ``path`` (symlinks not followed)."""
    path = params["path"]
    if not os.path.isdir(path):
        return {"path": path, "exists": os.path.lexists(path), "files": 0, "bytes": 0}
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return {"path": path, "exists": True, "files": files, "bytes": size}


def action_run_records(params: dict) -> dict:
    """The runs of ``task`` under ``root`` (``<root>/<task>/<ts>/run.json``): each run's
    timestamp, start and exit, oldest first by start."""
    task_dir = os.path.join(params["root"], params["task"])
    runs = []
    try:
        names = sorted(os.listdir(task_dir))
    except FileNotFoundError:
        names = []
    for name in names:
        try:
            with open(os.path.join(task_dir, name, "run.json"), encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            runs.append(
                {
                    "timestamp": name,
                    "run_dir": os.path.join(task_dir, name),
                    "started_at": record.get("started_at") or "",
                    "exit": record.get("exit"),
                }
            )
    runs.sort(key=lambda run: (run["started_at"], run["timestamp"]))
    return {"runs": runs}
