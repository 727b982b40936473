"""Host-side file actions: modes of paths, directories with a given mode, evidence files."""

import hashlib
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
