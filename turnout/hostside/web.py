"""Host-side HTTP checks: one GET that never follows redirects, judged; retries with backoff."""

import json
import random
import time
import urllib.error
import urllib.request

from turnout.hostside.base import HostsideError, write_json_atomically


def http_get(url: str, timeout: float) -> dict:
    """One GET that never follows redirects; returns status and parsed JSON body (or text)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read(1_000_000)
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read(1_000_000)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return {"status": None, "error": f"{url} unreachable: {reason}"}
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")[:2000]
    return {"status": status, "body": body}


def judge_health(response: dict, expect: dict) -> str | None:
    """Why a health response is not healthy, or None when it is (RELIABILITY 24)."""
    if response.get("status") is None:
        return response["error"]
    if response["status"] != 200:
        return f"health answered HTTP {response['status']}, not 200"
    body = response["body"]
    if not isinstance(body, dict):
        return "health answered 200 without a JSON object"
    if body.get("status") != "ok" and body.get("ok") is not True:
        return f"health reports status {body.get('status')!r}"
    for key, wanted in expect.items():
        if body.get(key) != wanted:
            return f"health reports {key}={body.get(key)!r}, expected {wanted!r}"
    return None


def action_http_health(params: dict) -> dict:
    """GET ``url`` once (a fact: no retries) and judge it against ``expect``."""
    response = http_get(params["url"], float(params.get("timeout", 10)))
    problem = judge_health(response, params.get("expect", {}))
    return {"healthy": problem is None, "problem": problem, **response}


def action_http_health_wait(params: dict) -> dict:
    """GET ``url`` with retries, exponential backoff and jitter, under an overall deadline; write
    the final response as JSON to ``record`` (0600, atomically). Fails when never healthy."""
    retries = int(params.get("retries", 5))
    timeout = float(params.get("timeout", 10))
    deadline = time.monotonic() + float(params.get("deadline", 120))
    delay = 0.5
    for attempt in range(retries + 1):
        response = http_get(params["url"], timeout)
        problem = judge_health(response, params.get("expect", {}))
        if problem is None or attempt == retries or time.monotonic() + delay > deadline:
            break
        time.sleep(delay + random.uniform(0, delay / 2))  # noqa: S311 - jitter, not crypto
        delay = min(delay * 2, 10.0)
    result = {
        "url": params["url"],
        "healthy": problem is None,
        "problem": problem,
        "attempts": attempt + 1,
        **response,
    }
    if params.get("record"):
        write_json_atomically(params["record"], result)
    if problem:
        raise HostsideError(f"health check failed after {attempt + 1} attempt(s): {problem}")
    return result
