"""Host-side HTTP checks: one GET that never follows redirects, judged; retries with backoff.

How a health answer is judged is configurable (``health_status``, ``health_body``); the body rule
language lives here because the host judges (stdlib only) and the control machine's smoke checks
(``turnout.smoke``) judge WebSocket answers with the same rules:

- ``ok`` (the default): a JSON object reporting ``"status": "ok"`` or ``"ok": true``;
- ``any``: any body;
- ``json:<JSON value>``: the body is exactly this JSON value (``json:true``, ``json:{"up":1}``);
- ``text:<text>``: the body, stripped, is exactly this text (``text:OK``);
- ``<path>=<value>[,<path>=<value>…]``: each dotted path into the JSON body
  (``checks.db.status=up``; a list index is a number: ``items.0.name=x``) has that value. A value
  is compared as JSON when it parses (``ok=true``, ``count=3``) and as a string otherwise; a
  string body value equal to the text as written matches too (``revision=1e5``).

A redirect is always a failure, whatever status is expected.
"""

import json
import random
import re
import time
import urllib.error
import urllib.request

from turnout.hostside.base import HostsideError, write_json_atomically

DEFAULT_BODY_RULE = "ok"
_PATH_RE = re.compile(r"[A-Za-z0-9_$@-]+(?:\.[A-Za-z0-9_$@-]+)*")
_MISSING = object()


def parse_body_rule(rule: str) -> tuple[str, object]:
    """
    A body rule (see the module docstring) as ``(kind, argument)``; ``ValueError`` saying what is
    wrong when it is not one.

    >>> parse_body_rule("ok"), parse_body_rule("json:true"), parse_body_rule("text: OK ")
    (('ok', None), ('json', True), ('text', 'OK'))
    >>> parse_body_rule("checks.db.status=up,ok=true")
    ('paths', (('checks.db.status', 'up'), ('ok', 'true')))
    """
    if not isinstance(rule, str):
        raise ValueError("a body rule must be a string")
    text = rule.strip()
    if text in ("ok", "any"):
        return text, None
    if text.startswith("json:"):
        try:
            return "json", json.loads(text[5:])
        except ValueError:
            raise ValueError(f"{text[5:]!r} after json: is not a JSON value") from None
    if text.startswith("text:"):
        return "text", text[5:].strip()
    items = []
    for item in text.split(","):
        path, equals, wanted = item.strip().partition("=")
        if not equals or not _PATH_RE.fullmatch(path.strip()):
            raise ValueError(
                f"{item.strip()!r} is not path=value; use ok, any, json:<value>, text:<text> or "
                "dotted.path=value items separated by commas"
            )
        items.append((path.strip(), wanted.strip()))
    return "paths", tuple(items)


def value_at(body: object, path: str) -> object:
    """
    The value at a dotted ``path`` in a JSON document (a number indexes a list), or ``_MISSING``.

    >>> value_at({"checks": {"db": {"status": "up"}}}, "checks.db.status")
    'up'
    >>> value_at({"items": [{"n": 1}]}, "items.0.n")
    1
    """
    current = body
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def value_matches(actual: object, wanted: object) -> bool:
    """
    Whether a body value is the wanted one: a wanted string is compared as JSON when it parses,
    else as a string; a string body value equal to the text as written matches too.

    >>> value_matches(True, "true"), value_matches(3, "3"), value_matches("1e5", "1e5")
    (True, True, True)
    >>> value_matches("up", "down"), value_matches(None, "None")
    (False, False)
    """
    if not isinstance(wanted, str):
        return json_equal(actual, wanted)
    if isinstance(actual, str) and actual == wanted:
        return True
    try:
        parsed = json.loads(wanted)
    except ValueError:
        return False
    return json_equal(actual, parsed)


def json_equal(left: object, right: object) -> bool:
    """
    Equality of JSON values where ``true`` is not ``1`` (Python's ``True == 1``) and ``1`` is
    ``1.0``.

    >>> json_equal(True, 1), json_equal(1, 1.0), json_equal({"a": [1]}, {"a": [1.0]})
    (False, True, True)
    """
    if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return type(left) is type(right) and left == right


def _shown(value: object) -> str:
    """A value as a message shows it: JSON, at most 80 characters."""
    text = "missing" if value is _MISSING else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:79] + "…"


def body_problem(body: object, rule: str, what: str = "health") -> str | None:
    """
    Why ``body`` (parsed JSON, or text) breaks the body ``rule``, or None when it holds.

    >>> body_problem({"status": "ok"}, "ok") is None
    True
    >>> body_problem("OK\\n", "text:OK") is None, body_problem(True, "json:true") is None
    (True, True)
    >>> body_problem({"checks": {"db": {"status": "down"}}}, "checks.db.status=up")
    'health reports checks.db.status="down", expected up'
    """
    kind, argument = parse_body_rule(rule)
    if kind == "any":
        return None
    if kind == "ok":
        if not isinstance(body, dict):
            return f"{what} answered without a JSON object"
        if body.get("status") != "ok" and body.get("ok") is not True:
            return f"{what} reports status {body.get('status')!r}"
        return None
    if kind == "json":
        if not json_equal(body, argument):
            return f"{what} answered {_shown(body)}, expected the JSON value {_shown(argument)}"
        return None
    if kind == "text":
        text = body if isinstance(body, str) else json.dumps(body)
        if text.strip() != argument:
            return f"{what} answered {_shown(text.strip())}, expected the text {argument!r}"
        return None
    for path, wanted in argument:
        actual = value_at(body, path)
        if actual is _MISSING or not value_matches(actual, wanted):
            return f"{what} reports {path}={_shown(actual)}, expected {wanted}"
    return None


def http_get(url: str, timeout: float) -> dict:
    """One GET that never follows redirects; returns status and parsed JSON body (or text), and
    the ``location`` of a redirect."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    location = None
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read(1_000_000)
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read(1_000_000)
        location = error.headers.get("Location") if 300 <= error.code < 400 else None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return {"status": None, "error": f"{url} unreachable: {reason}"}
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")[:2000]
    answer = {"status": status, "body": body}
    if location:
        answer["location"] = location
    return answer


def judge_health(
    response: dict, expect: dict, status: int = 200, body: str = DEFAULT_BODY_RULE
) -> str | None:
    """Why a health response is not healthy, or None when it is (RELIABILITY 24): the expected
    ``status`` (a redirect never passes), the body rule ``body``, and each key of ``expect``
    (a dotted path, e.g. ``{"db_backend": "postgresql"}``) equal."""
    if response.get("status") is None:
        return response["error"]
    got = response["status"]
    if 300 <= got < 400:
        where = f" to {response['location']}" if response.get("location") else ""
        return f"health answered HTTP {got} (a redirect{where}), not {status}"
    if got != status:
        return f"health answered HTTP {got}, not {status}"
    problem = body_problem(response["body"], body)
    if problem:
        return problem.replace("answered without", f"answered {status} without")
    for key, wanted in expect.items():
        actual = value_at(response["body"], key)
        if actual is _MISSING or not value_matches(actual, wanted):
            shown = None if actual is _MISSING else actual
            return f"health reports {key}={shown!r}, expected {wanted!r}"
    return None


def _judged(response: dict, params: dict) -> str | None:
    return judge_health(
        response,
        params.get("expect", {}),
        int(params.get("status", 200)),
        params.get("body", DEFAULT_BODY_RULE),
    )


def action_http_health(params: dict) -> dict:
    """GET ``url`` once (a fact: no retries) and judge it against ``status``, ``body`` and
    ``expect``."""
    response = http_get(params["url"], float(params.get("timeout", 10)))
    problem = _judged(response, params)
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
        problem = _judged(response, params)
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
