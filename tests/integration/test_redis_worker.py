"""The prod app's worker consumes jobs from the stack's Redis; stopped, it consumes nothing.

This is what a freeze relies on: ``docker compose stop worker`` really stops the consumer, so
jobs pushed meanwhile wait in the list (``refapp:jobs``) until the worker starts again.
"""

import json
import time
from urllib.parse import quote

import pytest
import redis
from conftest import STACK_DIR, compose, read_env_file, run_pyinfra, seed_app

QUEUE = "refapp:jobs"


@pytest.fixture(scope="module")
def prod(stack: dict) -> dict:
    """The prod app up (deploys/app_up.py), seeded, with an empty queue."""
    result = run_pyinfra(
        "-y", "--limit", "stack-prod", "tests/stack/inventory.py", "deploys/app_up.py"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    host = stack["hosts"]["prod"]
    seed_app(host, 5)
    env_file = read_env_file(host["env_file"])
    client = redis.Redis.from_url(env_file["REDIS_URL"])
    client.delete(QUEUE, f"{QUEUE}:processing", f"{QUEUE}:failed")
    yield {"host": host, "redis": client, "env": env_file}
    compose(host, "start", "worker")  # whatever a test did, leave the worker running
    client.close()


def meter(host: dict) -> tuple[int, float]:
    out = compose(
        host, "exec", "-T", "db", "psql", "-At", "-c", "SELECT id, value FROM meters ORDER BY id"
    ).stdout
    first = out.splitlines()[0].split("|")
    return int(first[0]), float(first[1])


def meter_value(host: dict, meter_id: int) -> float:
    out = compose(
        host,
        "exec",
        "-T",
        "db",
        "psql",
        "-At",
        "-c",
        f"SELECT value FROM meters WHERE id = {meter_id}",
    ).stdout
    return float(out.strip())


def wait_for(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")


def test_stack_redis_is_its_own(stack: dict, prod: dict) -> None:
    info = stack["redis"]
    assert prod["env"]["REDIS_URL"].endswith(f"@127.0.0.1:{info['port']}/{info['dbs']['prod']}")
    assert prod["redis"].ping() is True
    anonymous = redis.Redis(host="127.0.0.1", port=info["port"])
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    password = (STACK_DIR / "secrets" / "redis").read_text().strip()
    assert password not in (STACK_DIR / "stack.json").read_text()
    assert quote(password, safe="") in prod["env"]["REDIS_URL"]


def test_worker_consumes_and_a_stopped_worker_does_not(prod: dict) -> None:
    host, client = prod["host"], prod["redis"]
    meter_id, before = meter(host)
    job = json.dumps({"kind": "meter.add", "meter_id": meter_id, "delta": 2})

    client.rpush(QUEUE, job)
    wait_for(lambda: client.llen(QUEUE) == 0, "the running worker took the job")
    wait_for(lambda: meter_value(host, meter_id) == before + 2, "the job's update is in the db")
    assert client.llen(f"{QUEUE}:processing") == 0

    compose(host, "stop", "worker")
    client.rpush(QUEUE, job)
    time.sleep(4)  # several of the worker's job waits (1 s each), were it still consuming
    assert client.llen(QUEUE) == 1, "a stopped worker must not consume jobs"
    assert meter_value(host, meter_id) == before + 2

    compose(host, "start", "worker")
    wait_for(lambda: client.llen(QUEUE) == 0, "the restarted worker took the waiting job")
    wait_for(lambda: meter_value(host, meter_id) == before + 4, "the waiting job is done")


def test_a_job_it_cannot_understand_is_set_aside(prod: dict) -> None:
    client = prod["redis"]
    client.rpush(QUEUE, b"not json")
    wait_for(lambda: client.llen(QUEUE) == 0, "the worker took the bad job")
    wait_for(lambda: client.lrange(f"{QUEUE}:failed", 0, -1) == [b"not json"], "it is set aside")
