"""Shipping the host-side program (``turnout/hostside/``) to a host and running one action there.

The program travels inside the command itself, as a quoted here-document fed to the host's Python
on stdin, so facts work during ``--dry`` without any upload step and nothing is left on the host.
Parameters travel as one JSON argument and must never contain a secret: DSNs are named by the
environment variable that holds them on the host (``dsn_env``) and the ``.env`` file to read.

    from turnout.remote import hostside_command
    command = hostside_command("http_health", {"url": "http://127.0.0.1:18080/api/v1/health"})
"""

import ast
import json
from functools import cache
from pathlib import Path

from pyinfra.api import QuoteString, StringCommand

# Concatenated in this order; main.py last (it holds the action tables and runs ``main``).
SHIPPED_MODULES = (
    "dsn.py",
    "hostside/base.py",
    "hostside/files.py",
    "hostside/web.py",
    "hostside/pg.py",
    "hostside/dump.py",
    "hostside/assets.py",
    "hostside/main.py",
)
HEREDOC_MARKER = "__TURNOUT_HOSTSIDE_EOF__"


def without_docs(source: str) -> str:
    """``source`` without comments and docstrings (same code, ``ast.unparse``d): the program
    travels inside one argv element of the host's shell, which Linux caps at 128 KiB."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@cache
def hostside_source() -> str:
    """The text shipped to hosts: the ``SHIPPED_MODULES`` one after the other, without
    comments and docstrings."""
    here = Path(__file__).parent
    parts = [without_docs((here / name).read_text(encoding="utf-8")) for name in SHIPPED_MODULES]
    source = "\n\n".join(parts)
    if HEREDOC_MARKER in source:
        raise RuntimeError("the here-document marker appears in the shipped source")
    return source


def hostside_command(action: str, params: dict, python: str = "python3") -> StringCommand:
    """A shell command running ``action`` of the host-side program with ``params``.

    ``python`` is the interpreter on the host (it needs psycopg for database actions).
    """
    return StringCommand(
        QuoteString(python),
        "-",
        QuoteString(action),
        QuoteString(json.dumps(params, sort_keys=True)),
        f"<<'{HEREDOC_MARKER}'\n{hostside_source()}\n{HEREDOC_MARKER}",
    )


def parse_hostside_output(output: list[str]) -> dict:
    """The JSON object printed by a host-side action (its last non-empty line)."""
    for line in reversed(output):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return {"ok": False, "error": "the host-side program printed no result"}
