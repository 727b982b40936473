"""Host-side file actions: modes of paths, directories with a given mode."""

import os
import stat


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
