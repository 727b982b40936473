"""The stack itself: up is idempotent, down leaves no process behind; SSH host keys are strict."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import PORT_BASE, REPO, STACK_DIR, run_pyinfra, stack_env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split()[2] != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stack_processes(state: dict) -> dict[str, tuple[int, int]]:
    """name -> (pid, port) of every process the stack started."""
    processes = {f"pg-{r}": (i["pid"], i["port"]) for r, i in state["pg"].items()}
    processes.update({f"sshd-{n}": (i["pid"], i["port"]) for n, i in state["ssh"]["hosts"].items()})
    return processes


def test_up_is_idempotent_and_down_leaves_nothing() -> None:
    # Not under pytest's tmp_path: that is 0700, and the clusters run as the postgres user.
    root = STACK_DIR.with_name(STACK_DIR.name + "-updown")
    env = stack_env(TURNOUT_STACK_DIR=str(root), TURNOUT_STACK_PORT_BASE=str(PORT_BASE + 500))
    script = [sys.executable, str(REPO / "tests" / "stack" / "stack.py")]
    subprocess.run([*script, "up"], env=env, check=True, cwd=REPO, capture_output=True)
    state = json.loads((root / "stack.json").read_text())
    first = stack_processes(state)
    assert len(first) == 5
    for name, (pid, port) in first.items():
        assert pid_alive(pid), name
        assert port_open(port), name
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    for _, port in first.values():
        local = [
            line.split()[3]
            for line in listening.splitlines()
            if line.split()[3].endswith(f":{port}")
        ]
        assert local and all(addr.startswith("127.0.0.1:") for addr in local), local

    subprocess.run([*script, "up"], env=env, check=True, cwd=REPO, capture_output=True)
    again = stack_processes(json.loads((root / "stack.json").read_text()))
    assert again == first  # nothing restarted

    subprocess.run([*script, "down"], env=env, check=True, cwd=REPO, capture_output=True)
    for name, (pid, port) in first.items():
        assert not pid_alive(pid), f"{name} (pid {pid}) survived down"
        assert not port_open(port), f"{name} still listens on {port}"
    assert not (root).exists()


def test_deploy_over_ssh_with_pinned_host_keys(stack: dict) -> None:
    result = run_pyinfra(
        "-y", "tests/stack/inventory.py", "exec", "--", "echo", "$TURNOUT_STACK_HOST"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "stack-staging" in result.stdout and "stack-prod" in result.stdout


def test_wrong_host_key_is_refused(stack: dict, tmp_path: Path) -> None:
    other_key = tmp_path / "other"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    key_type, key = other_key.with_suffix(".pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        "".join(
            f"[127.0.0.1]:{h['port']} {key_type} {key}\n" for h in stack["ssh"]["hosts"].values()
        )
    )
    result = run_pyinfra(
        "-y",
        "tests/stack/inventory.py",
        "exec",
        "--",
        "touch",
        str(tmp_path / "ran"),
        env=stack_env(TURNOUT_STACK_KNOWN_HOSTS=str(wrong)),
    )
    assert result.returncode != 0
    assert not (tmp_path / "ran").exists()
    assert "host key" in (result.stdout).lower()


def test_unknown_host_is_refused_not_accepted(stack: dict, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = run_pyinfra(
        "-y",
        "tests/stack/inventory.py",
        "exec",
        "--",
        "true",
        env=stack_env(TURNOUT_STACK_KNOWN_HOSTS=str(empty)),
    )
    assert result.returncode != 0
    assert empty.read_text() == ""  # accept-new would have written the key


def test_production_inventory_reads_the_environment(stack: dict) -> None:
    ssh = stack["ssh"]
    env = stack_env(
        TURNOUT_STAGING_HOSTS=f"127.0.0.1:{ssh['hosts']['staging']['port']}",
        TURNOUT_SSH_KEY=ssh["client_key"],
        TURNOUT_SSH_KNOWN_HOSTS=ssh["known_hosts"],
    )
    result = run_pyinfra(
        "-y", "inventories/staging.py", "exec", "--", "echo", "$TURNOUT_STACK_HOST", env=env
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "staging" in result.stdout
    assert STACK_DIR.exists()
