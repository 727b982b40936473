"""Two test stacks on one machine each run their own Docker engine: taking one down never takes
the other's containers with it (issue 7: a second stack used to reuse the first one's dockerd)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import BIN, REPO

# Outside the slots conftest hands out (26400, 30400…) and the demo's 25400.
CANDIDATE_BASES = (40400, 41400, 42400, 43400, 44400, 45400)
STACK_PORTS = (22, 23, 32, 33, 34, 35, 36, 80, 81)


def free_base(taken: set[int]) -> int:
    """A port base none of whose stack ports answers on loopback."""
    for base in CANDIDATE_BASES:
        if base in taken:
            continue
        busy = False
        for offset in STACK_PORTS:
            with socket.socket() as sock:
                sock.settimeout(0.2)
                busy = busy or sock.connect_ex(("127.0.0.1", base + offset)) == 0
        if not busy:
            return base
    raise AssertionError("no free port base for a second test stack")


def stack(command: str, directory: Path, base: int) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TURNOUT_STACK_DIR": str(directory),
        "TURNOUT_STACK_PORT_BASE": str(base),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    env.pop("DOCKER_HOST", None)  # the stack must choose its own engine, whatever we point at
    return subprocess.run(
        [sys.executable, str(REPO / "tests" / "stack" / "stack.py"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def docker(host: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/usr/bin/docker", *args],
        env={**os.environ, "DOCKER_HOST": host},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_each_stack_owns_its_engine_and_down_says_what_it_does() -> None:
    first = REPO / f".stack-test-engines-{os.getpid()}-a"
    second = REPO / f".stack-test-engines-{os.getpid()}-b"
    first_base = free_base(set())
    second_base = free_base({first_base})
    try:
        for directory, base in ((first, first_base), (second, second_base)):
            result = stack("up", directory, base)
            assert result.returncode == 0, result.stdout + result.stderr
        states = [json.loads((d / "stack.json").read_text())["docker"] for d in (first, second)]
        assert states[0]["host"] != states[1]["host"]
        assert states[0]["pid"] != states[1]["pid"]
        created = docker(states[1]["host"], "create", "--name", "probe", "turnout-pg:15")
        assert created.returncode == 0, created.stderr

        down = stack("down", first, first_base)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "stopping the stack's docker engine" in down.stdout
        assert f"removed {first}:" in down.stdout and not first.exists()

        # The second stack's engine and its container are still there.
        assert docker(states[1]["host"], "inspect", "probe").returncode == 0
        assert docker(states[0]["host"], "info").returncode != 0
    finally:
        for directory, base in ((first, first_base), (second, second_base)):
            if directory.exists():
                stack("down", directory, base)
