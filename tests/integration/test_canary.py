"""No secret anywhere, with every exec of a whole rehearsal captured by the kernel's own account.

The rehearsal runs twice (a fresh evidence directory each time, so each dumps, restores and mirrors
for real): at ``-vvv`` (pyinfra prints every command's output) and with ``--debug``. ``strace -f``
follows the pyinfra process and everything it starts, and is attached to the staging host's sshd,
so every ``execve`` on the control side and on the "host" is recorded with its full argv at the
moment of the call: nothing short-lived is missed, as a /proc poller misses most ``sh -c``
wrappers. The test asserts the capture saw the tools the rehearsal must run, then that no stack
secret (raw, URL-encoded or in its JSON form) is in any argv, in the output, or in any byte of any
file of the evidence.
"""

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from conftest import BIN, REPO, STACK_DIR, run_pyinfra, run_stack, stack_env

EXECVE_RE = re.compile(r'execve\("(?P<path>[^"]*)", \[(?P<argv>.*?)\](?:, 0x[0-9a-f]+ /\*| /\*|,)')


def secret_forms(secret: str) -> set[str]:
    """The ways a secret could leak: as is, percent-encoded, JSON-escaped."""
    return {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
    }


class ExecTrace:
    """``strace -f -e trace=execve`` attached to running processes (the host's sshd): every exec
    below them, with its argv, until ``stop``."""

    def __init__(self, pids: list[int], out: Path) -> None:
        self.out = out
        argv = ["strace", "-f", "-qq", "-s", "65535", "-e", "trace=execve", "-o", str(out)]
        for pid in pids:
            argv += ["-p", str(pid)]
        self.process = subprocess.Popen(argv, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:  # attached once it writes
            time.sleep(0.05)
        time.sleep(0.3)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)  # detaches cleanly
        self.process.wait(timeout=30)
        return self.out.read_text(errors="replace")


def traced_pyinfra(out: Path, *args: str) -> subprocess.CompletedProcess:
    """The pyinfra CLI under ``strace -f``: every exec of the control side."""
    return subprocess.run(
        [
            "strace", "-f", "-qq", "-s", "65535", "-e", "trace=execve", "-o", str(out),
            str(BIN / "pyinfra"), *args,
        ],
        env=stack_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )  # fmt: skip


def exec_argvs(trace: str) -> list[str]:
    """The argv (joined) of every successful execve in an strace log."""
    return [match.group("argv") for match in EXECVE_RE.finditer(trace)]


@pytest.fixture(scope="module")
def seeded(stack: dict) -> dict:
    run_stack("seed", "50")
    up = run_pyinfra(
        "-y", "--limit", "stack-staging", "tests/stack/inventory.py", "deploys/app_up.py"
    )
    assert up.returncode == 0, up.stdout[-3000:]
    return json.loads((STACK_DIR / "stack.json").read_text())


@pytest.fixture(scope="module")
def traced(seeded: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not shutil.which("strace"):
        pytest.fail("strace is needed (scripts/setup.sh installs it)")
    tmp = tmp_path_factory.mktemp("canary")
    sshd = seeded["ssh"]["hosts"]["staging"]["pid"]
    runs = {}
    for name, flags in (("vvv", ("-vvv",)), ("debug", ("--debug",))):
        host_trace = ExecTrace([sshd], tmp / f"{name}-host.strace")
        result = traced_pyinfra(
            tmp / f"{name}-control.strace",
            "-y",
            *flags,
            "tests/stack/inventory.py",
            "deploys/dry_run.py",
            "--limit",
            "stack-staging",
            "--data",
            f"evidence_timestamp=canary-{name}",
        )
        host = host_trace.stop()
        control = (tmp / f"{name}-control.strace").read_text(errors="replace")
        runs[name] = {"result": result, "argv": exec_argvs(host) + exec_argvs(control)}
    return runs


@pytest.mark.parametrize("name", ["vvv", "debug"])
def test_every_exec_is_captured(traced: dict, name: str) -> None:
    run = traced[name]
    assert run["result"].returncode == 0, run["result"].stdout[-4000:]
    argvs = run["argv"]
    assert len(argvs) > 50  # the whole run, control and host side
    for tool in ('"pg_dump"', '"pg_restore"', '"rsync"', '"sh", "-c"', "hostside-"):
        assert any(tool in argv for argv in argvs), f"the trace saw no {tool}"
    # the short-lived shell wrappers a /proc poller misses are all there, with their argv
    wrappers = [argv for argv in argvs if argv.startswith('"sh", "-c", ') and "hostside-" in argv]
    assert len(wrappers) >= 15, len(wrappers)


def test_no_secret_in_argv_output_or_evidence(traced: dict, stack_secrets: list[str]) -> None:
    evidence = Path(
        json.loads((STACK_DIR / "stack.json").read_text())["hosts"]["staging"]["evidence_root"]
    )
    files = [path for path in evidence.rglob("*") if path.is_file()]
    assert any(path.name == "source.dump" for path in files)
    assert any(path.suffix == ".log" for path in files)
    haystacks = {f"evidence file {path}": path.read_bytes() for path in files}
    for name, run in traced.items():
        haystacks[f"{name} output"] = run["result"].stdout.encode()
        for index, argv in enumerate(run["argv"]):
            haystacks[f"{name} exec #{index}: {argv[:120]}"] = argv.encode()
    leaks = []
    for secret in stack_secrets:
        for form in secret_forms(secret):
            needle = form.encode()
            leaks += [where for where, data in haystacks.items() if needle in data]
    assert not leaks, leaks[:10]


def test_the_secrets_are_really_there_to_find(stack_secrets: list[str]) -> None:
    """The scan above is not vacuous: the stack's secrets exist and the hosts' .env files, which
    turnout reads on the host, hold them."""
    assert len(stack_secrets) >= 5 and all(len(secret) >= 8 for secret in stack_secrets)
    env_texts = [
        Path(host["env_file"]).read_text()
        for host in json.loads((STACK_DIR / "stack.json").read_text())["hosts"].values()
    ]
    assert any(
        form in text
        for secret in stack_secrets
        for form in secret_forms(secret)
        for text in env_texts
    )
