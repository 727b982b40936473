"""HTTP checks run from the host (C1: health). A check changes nothing on the host."""

import json

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import FileContents

from turnout.facts.http import HttpHealth
from turnout.remote import hostside_command
from turnout.settings import DEFAULTS, data_value, load_settings


def recorded_body(record: str | None) -> object:
    """The body kept in a previous health record, or None."""
    if not record:
        return None
    lines = host.get_fact(FileContents, path=record)
    if not lines:
        return None
    try:
        previous = json.loads("\n".join(lines))
    except ValueError:
        return None
    return previous.get("body") if previous.get("healthy") else None


def host_setting(name: str) -> object:
    """One setting of the current host, validated (``SettingsError`` when it is invalid)."""
    return getattr(load_settings({name: data_value(host.data, name, DEFAULTS[name])}), name)


@operation()
def health(
    url: str,
    expect: dict | None = None,
    retries: int = 5,
    timeout: float = 10,
    deadline: float = 120,
    record: str | None = None,
    status: int | None = None,
    body: str | None = None,
):
    """
    Check a health endpoint: the expected HTTP status (a redirect always fails), the body rule,
    and each key of ``expect`` equal. Retries with backoff and jitter under an overall deadline;
    fails the run when the endpoint never becomes healthy. The response is kept as JSON in
    ``record`` (e.g. ``<evidence>/outputs/health.json``); a healthy endpoint whose answer is
    already recorded changes nothing.

    + url: the full health URL (``<base_url><health_path>``)
    + expect: keys (dotted paths) the body must have, e.g. ``{"db_backend": "postgresql"}``;
      values compared as JSON when they parse, else as strings
    + status: the HTTP status to expect; None takes the ``health_status`` setting (200)
    + body: the body rule; None takes the ``health_body`` setting (``ok``: a JSON object with
      ``status: ok``); ``any``, ``json:true``, ``text:OK``, ``checks.db.status=up,checks.cache=1``
    + retries / timeout / deadline: attempts after the first, per-request and overall seconds
    + record: where to keep the response on the host

    .. code:: python

        from turnout.operations import http
        http.health(
            name="Health",
            url="http://127.0.0.1:18080/api/v1/health",
            expect={"db_backend": "postgresql"},
            record="/var/lib/turnout/evidence/app_up/20261123T120000Z/outputs/health.json",
        )
        http.health(name="Health (plain OK)", url="http://127.0.0.1:18081/healthz", body="text:OK")
    """
    if status is None:
        status = host_setting("health_status")
    if body is None:
        body = host_setting("health_body")
    current = host.get_fact(
        HttpHealth, url=url, expect=expect, timeout=timeout, status=status, body=body
    )
    if current.get("healthy") and (record is None or recorded_body(record) == current["body"]):
        host.noop(f"{url} is healthy (HTTP {status}) and recorded")
        return
    reason = current.get("problem") or current.get("error") or "answer not recorded yet"
    host.log(f"Will check {url} with up to {retries} retries ({reason})")
    yield hostside_command(
        "http_health_wait",
        {
            "url": url,
            "expect": expect or {},
            "retries": retries,
            "timeout": timeout,
            "deadline": deadline,
            "record": record,
            "status": status,
            "body": body,
        },
    )
