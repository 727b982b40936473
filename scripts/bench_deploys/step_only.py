"""Benchmark deploy: one step of ``deploys/dry_run.py`` alone, called exactly as the rehearsal
calls it (``scripts/bench.py`` times the dump and the mirror step with it).

    cd <checkout> && TURNOUT_BENCH_STEP="Dump the source database" pyinfra -y \
        tests/stack/inventory.py /path/to/scripts/bench_deploys/step_only.py --limit stack-staging \
        --data evidence_timestamp=<fresh>

Run from the root of the checkout being measured: it reads that checkout's
``deploys/dry_run.py``, replaces every operation call (a call with a ``name=`` keyword, at any
depth of the module's statements) by ``pass`` except the one named ``TURNOUT_BENCH_STEP``, and
runs the rest as the rehearsal would: settings, pre-flight, the names the call uses. So the call
is dry_run.py's own, in every revision, and cannot drift out of sync with it. The steps before it
do not run: the benchmark creates the evidence directory's ``logs/``, ``outputs/`` and
``src_artifacts/`` beforehand.
"""

import ast
import os
from pathlib import Path

REHEARSAL = Path("deploys/dry_run.py").resolve()


def operation_name(node: ast.AST) -> str | None:
    """The ``name=`` of an operation call (``module.op(name="…", …)``), else None."""
    if isinstance(node, ast.Call):
        for keyword in node.keywords:
            if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
    return None


class KeepOneStep(ast.NodeTransformer):
    """Every operation call but ``step`` becomes ``pass`` (same lines, same control flow)."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.kept = 0

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        name = operation_name(node.value)
        if name is None:
            return node
        func = node.value.func if isinstance(node.value, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr == "off":
            return node  # the stand-in for a step switched off: it runs only when that step can't
        if name == self.step:
            self.kept += 1
            return node
        return ast.copy_location(ast.Pass(), node)


def step_only(step: str) -> ast.Module:
    tree = ast.parse(REHEARSAL.read_text(encoding="utf-8"), filename=str(REHEARSAL))
    keeper = KeepOneStep(step)
    tree = ast.fix_missing_locations(keeper.visit(tree))
    if keeper.kept != 1:
        raise SystemExit(
            f"step_only: {REHEARSAL} has {keeper.kept} operations named {step!r} (expected one)"
        )
    return tree


STEP = os.environ.get("TURNOUT_BENCH_STEP", "")
if not STEP:
    raise SystemExit("step_only: set TURNOUT_BENCH_STEP to the name of a step of dry_run.py")
exec(compile(step_only(STEP), str(REHEARSAL), "exec"), globals())  # noqa: S102 - dry_run.py itself
