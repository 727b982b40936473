"""Facts measured once: host-side facts memoised per host, run phase and host state.

pyinfra 3 has no fact cache and runs an operation's generator twice (planning, then executing), so
an expensive fact (dump identity, row counts, orphan joins, asset samples, rsync plans) would be
measured again and again. ``observe`` keeps each answer for the current host until the host may
have changed: an entry is valid within one phase (loading and planning share one; executing starts
afresh) and, while executing, until an operation on that host changes something (runs commands)
or fails (a state callback bumps the host's generation). So each fact is measured once per phase
while nothing changes, and a step always sees what earlier steps did.

    from turnout.memo import observe
    counts = observe(RowCounts, database=staging_db, tables=None, timeout_ms=3000)
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra import host, state
from pyinfra.api.state import BaseStateCallback


class _HostChanged(BaseStateCallback):
    """Bumps a host's generation when the operation that just ran on it changed something (ran
    commands) or failed: read at the start of the next operation, when the last one is complete."""

    @staticmethod
    def operation_host_start(run_state: Any, run_host: Any, op_hash: Any) -> None:
        if op_hash not in run_state.ops[run_host]:
            return  # an operation this host does not run (pyinfra reports it "Skipped")
        last = _memo(run_state)["last_op"]
        previous = last.get(run_host.name)
        last[run_host.name] = op_hash
        if previous is None:
            return
        meta = run_state.get_op_data_for_host(run_host, previous).operation_meta
        if not meta.is_complete() or not meta.did_succeed() or meta.did_change():
            _bump(run_state, run_host)


def _memo(run_state: Any) -> dict:
    """The memo of this run (created with its callback on first use)."""
    memo = getattr(run_state, "_turnout_memo", None)
    if memo is None:
        memo = {"facts": {}, "generation": {}, "last_op": {}}
        run_state._turnout_memo = memo
        run_state.add_callback_handler(_HostChanged())
    return memo


def _bump(run_state: Any, run_host: Any) -> None:
    generations = _memo(run_state)["generation"]
    generations[run_host.name] = generations.get(run_host.name, 0) + 1


def _key(fact_cls: type, kwargs: dict) -> str:
    return f"{fact_cls.__module__}.{fact_cls.__name__}:" + json.dumps(
        kwargs, sort_keys=True, default=repr
    )


def observe(fact_cls: type, **kwargs: Any) -> Any:
    """``host.get_fact(fact_cls, **kwargs)`` for the current host, measured once while the host
    cannot have changed (see the module docstring)."""
    memo = _memo(state)
    executing = bool(state.is_executing)
    generation = memo["generation"].get(host.name, 0) if executing else -1
    key = (host.name, executing, generation, _key(fact_cls, kwargs))
    if key not in memo["facts"]:
        memo["facts"][key] = host.get_fact(fact_cls, **kwargs)
    return memo["facts"][key]


def forget(fact_cls: type | None = None) -> None:
    """Drop the current host's memoised answers (of ``fact_cls``, or all): for a step that changed
    the host from inside its own generator."""
    memo = _memo(state)
    prefix = _key(fact_cls, {}).split(":", 1)[0] if fact_cls else ""
    for key in [k for k in memo["facts"] if k[0] == host.name and k[3].startswith(prefix)]:
        del memo["facts"][key]
