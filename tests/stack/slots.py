"""Port slots for the stacks that share one machine: the integration tests' and the benchmarks'.

A slot is a port base (``TURNOUT_STACK_PORT_BASE``) and a stack directory. It is claimed
machine-wide, not per checkout (ports are machine-wide): an exclusive ``flock`` on
``/tmp/turnout-test-slots/slot-<base>.lock``, held by the claiming process for as long as it runs.
A slot whose lock is free but whose ports already answer is skipped too, unless the stack
answering there is the claimer's own (its stack directory's ``stack.json`` names the same
ports): a stack left up with ``TURNOUT_KEEP_STACK=1`` by another checkout keeps its ports, the
claimer's own kept stack is taken again.

    import slots  # tests/stack on sys.path (the conftest and the bench scripts put it there)
    slot = slots.claim_slot(slots.TEST_BASES, lambda index: Path(f".stack-test-{index}"))
    print(slot.base, slot.stack_dir)  # 26400 .stack-test-0, or the next free one
"""

import fcntl
import importlib.util
import json
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_DIR = Path("/tmp/turnout-test-slots")

# The integration tests' port bases (first: the historical 26400) and the benchmarks'; no two
# slots' port ranges (base+22 … base+84, and a nested stack at base+500) overlap.
TEST_BASES = (26400, 30400, 31400, 32400, 33400)
BENCH_BASES = (28400, 28800, 29400, 29800)


@dataclass
class Slot:
    """A claimed slot; the lock is held until ``release`` or the process ends."""

    index: int
    base: int
    stack_dir: Path
    handle: IO[str]

    def release(self) -> None:
        self.handle.close()


def stack_ports(base: int) -> dict[str, int]:
    """Every port the stack of ``base`` listens on (``tests/stack/stack.py: ports``)."""
    spec = importlib.util.spec_from_file_location(
        "turnout_stack_for_slots", Path(__file__).with_name("stack.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ports(base)


def port_answers(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def answering_ports(ports: Iterable[int]) -> list[int]:
    """The ports of ``ports`` that something answers on."""
    return [port for port in ports if port_answers(port)]


def is_own_stack(stack_dir: Path, ports: dict[str, int]) -> bool:
    """Whether ``stack_dir`` holds a stack record (``stack.json``) on these ports: the stack
    answering there is the claimer's own, kept up."""
    try:
        record = json.loads((stack_dir / "stack.json").read_text())
        return record["pg"]["staging"]["port"] == ports["pg_staging"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def is_own_cluster(stack_dir: Path, ports: dict[str, int]) -> bool:
    """Whether a PostgreSQL cluster under ``stack_dir/pg`` (``stack.py: start_cluster``) runs on
    one of these ports (its ``postmaster.pid`` names the port on its fourth line)."""
    for pid_file in (stack_dir / "pg").glob("*/postmaster.pid"):
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            continue
        if len(lines) > 3 and lines[3].strip().isdigit() and int(lines[3]) in ports.values():
            return True
    return False


def try_lock(path: Path) -> IO[str] | None:
    """An open handle holding an exclusive lock on ``path``, or None when another process holds
    it."""
    handle = open(path, "w")  # noqa: SIM115 - held open while the slot is ours
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def claim_slot(
    bases: Iterable[int],
    stack_dir_of: Callable[[int], Path],
    lock_dir: Path = LOCK_DIR,
    ports_of: Callable[[int], dict[str, int]] = stack_ports,
    is_own: Callable[[Path, dict[str, int]], bool] = is_own_stack,
) -> Slot:
    """The first slot of ``bases`` whose lock is free and whose ports are free (or answered by
    the claimer's own stack, ``stack_dir_of(index)``); ``RuntimeError`` naming why each slot
    was passed over when none is left.

    + bases: the port bases to try, in order
    + stack_dir_of: the stack directory of slot ``index`` (0, 1, …)
    + lock_dir: where the lock files are (machine-wide)
    + ports_of: the stack's ports for a base
    + is_own: whether what answers on those ports is the stack in the given directory
    """
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    passed: list[str] = []
    for index, base in enumerate(bases):
        handle = try_lock(lock_dir / f"slot-{base}.lock")
        if handle is None:
            passed.append(f"{base}: locked by another run")
            continue
        stack_dir = stack_dir_of(index)
        ports = ports_of(base)
        taken = answering_ports(ports.values())
        if taken and not is_own(stack_dir, ports):
            handle.close()
            shown = ", ".join(map(str, taken[:3])) + (", …" if len(taken) > 3 else "")
            passed.append(f"{base}: ports answer ({shown}), another stack is up there")
            continue
        return Slot(index=index, base=base, stack_dir=stack_dir, handle=handle)
    raise RuntimeError("no free stack slot: " + "; ".join(passed))


def claim_bench_slot(
    stack_dir: Path,
    base: int | None = None,
    ports_of: Callable[[int], dict[str, int]] = stack_ports,
    is_own: Callable[[Path, dict[str, int]], bool] = is_own_stack,
) -> Slot:
    """A benchmark's slot: ``base`` when given (locked and checked like any other), else the
    first free one of ``BENCH_BASES``; one stack directory per checkout (the benchmarks' own
    ``.bench/bench.lock`` keeps to one benchmark at a time there). ``SystemExit`` with the
    reasons when there is none.

    + stack_dir: the benchmark's stack directory
    + base: the port base asked for (``--port-base``), or None for the next free slot
    + ports_of: the ports of a base that must be free (default: the whole stack's)
    + is_own: whether what answers there is this benchmark's own stack, kept with ``--keep``
    """
    bases = BENCH_BASES if base is None else (base,)
    try:
        return claim_slot(bases, lambda index: stack_dir, ports_of=ports_of, is_own=is_own)
    except RuntimeError as error:
        raise SystemExit(f"bench: {error}") from None
