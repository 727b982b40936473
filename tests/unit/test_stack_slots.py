"""tests/stack/slots.py: the slot claim the integration tests and the benchmarks share. Two
processes get two slots; a slot where something already answers is passed over unless the stack
there is the claimer's own (kept up); when none is left, the error says why for each."""

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "stack"))
import slots  # noqa: E402 - tests/stack is not a package

BASES = (41000, 41100, 41200)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def quiet_ports():
    """Ports nothing answers on, per base (the real stack's ports could be anyone's)."""
    table = {base: {"pg_staging": free_port(), "app_staging": free_port()} for base in BASES}
    return table.__getitem__


CLAIMER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {stack!r})
    import slots
    ports = json.loads({ports!r})
    slot = slots.claim_slot({bases!r}, lambda i: __import__("pathlib").Path(f"/nonexistent/{{i}}"),
                            lock_dir=__import__("pathlib").Path({lock_dir!r}),
                            ports_of=lambda base: ports[str(base)])
    print(slot.base, flush=True)
    sys.stdin.read()  # hold the slot until the test closes stdin
    """
)


def test_two_processes_get_different_slots(tmp_path: Path, quiet_ports) -> None:
    ports = json.dumps({str(base): quiet_ports(base) for base in BASES})
    script = CLAIMER.format(
        stack=str(REPO / "tests" / "stack"), ports=ports, bases=BASES, lock_dir=str(tmp_path)
    )
    holders, claimed = [], []
    try:
        for _ in range(2):  # the first holds its slot while the second claims
            process = subprocess.Popen(  # noqa: S603 - our own interpreter
                [sys.executable, "-c", script],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            holders.append(process)
            claimed.append(int(process.stdout.readline()))
    finally:
        for process in holders:
            process.stdin.close()
            process.wait(timeout=30)
    assert claimed == [BASES[0], BASES[1]]
    assert all(process.returncode == 0 for process in holders)


def test_a_slot_answering_for_another_stack_is_passed_over(tmp_path: Path, quiet_ports) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        def ports_of(base: int) -> dict[str, int]:
            ports = quiet_ports(base)
            return {**ports, "app_staging": taken} if base == BASES[0] else ports

        slot = slots.claim_slot(BASES, lambda i: tmp_path / f"s{i}", tmp_path, ports_of)
        try:
            assert (slot.index, slot.base, slot.stack_dir) == (1, BASES[1], tmp_path / "s1")
        finally:
            slot.release()

        # the claimer's own stack, kept up there, is taken again
        own = tmp_path / "s0"
        own.mkdir()
        (own / "stack.json").write_text(
            json.dumps({"pg": {"staging": {"port": ports_of(BASES[0])["pg_staging"]}}})
        )
        slot = slots.claim_slot(BASES, lambda i: tmp_path / f"s{i}", tmp_path, ports_of)
        assert slot.base == BASES[0]
        slot.release()


def test_no_slot_left_names_each_reason(tmp_path: Path, quiet_ports) -> None:
    held = [slots.claim_slot(BASES[:1], lambda i: tmp_path, tmp_path, quiet_ports)]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(RuntimeError) as raised:
            slots.claim_slot(
                BASES[:2], lambda i: tmp_path, tmp_path, lambda base: {"app_staging": taken}
            )
    held[0].release()
    assert str(raised.value) == (
        f"no free stack slot: {BASES[0]}: locked by another run; "
        f"{BASES[1]}: ports answer ({taken}), another stack is up there"
    )


def test_stack_ports_are_the_stacks_own() -> None:
    ports = slots.stack_ports(26400)
    assert ports["pg_staging"] == 26433 and ports["app_staging"] == 26480
