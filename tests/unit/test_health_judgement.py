"""How a health answer is judged: the expected status, the body rule, the expect items."""

import pytest

from turnout.hostside.web import body_problem, judge_health, parse_body_rule
from turnout.settings import SettingsError, load_settings

NESTED = {"checks": {"db": {"status": "up"}, "cache": {"status": "up", "latency": 3}}}


def ok(status: int = 200, body: object = None) -> dict:
    return {"status": status, "body": {"status": "ok"} if body is None else body}


@pytest.mark.parametrize(
    ("response", "status", "rule", "problem"),
    [
        # The default: as before (200, a JSON object reporting status ok or ok: true).
        (ok(), 200, "ok", None),
        (ok(body={"ok": True}), 200, "ok", None),
        (ok(body={"status": "degraded"}), 200, "ok", "health reports status 'degraded'"),
        (ok(body="<html>login</html>"), 200, "ok", "answered 200 without a JSON object"),
        (ok(body=True), 200, "ok", "without a JSON object"),
        # any
        (ok(body="<html>anything</html>"), 200, "any", None),
        # json:<value>
        (ok(body=True), 200, "json:true", None),
        (ok(body=1), 200, "json:true", "expected the JSON value true"),
        (ok(body=False), 200, "json:true", "health answered false"),
        (ok(body={"up": 1}), 200, 'json:{"up": 1}', None),
        (ok(body={"up": 1, "x": 2}), 200, 'json:{"up": 1}', "expected the JSON value"),
        # text:<text>
        (ok(body="OK\n"), 200, "text:OK", None),
        (ok(body="ok"), 200, "text:OK", "expected the text 'OK'"),
        (ok(body={"status": "ok"}), 200, "text:OK", "expected the text 'OK'"),
        # dotted paths
        (ok(body={"status": "healthy"}), 200, "status=healthy", None),
        (ok(body=NESTED), 200, "checks.db.status=up", None),
        (ok(body=NESTED), 200, "checks.db.status=up,checks.cache.latency=3", None),
        (ok(body=NESTED), 200, "checks.cache.latency=4", "checks.cache.latency=3, expected 4"),
        (ok(body=NESTED), 200, "checks.queue.status=up", "checks.queue.status=missing"),
        (ok(body={"db": "down"}), 200, "db=up", 'health reports db="down", expected up'),
        (ok(body={"items": [{"ok": True}]}), 200, "items.0.ok=true", None),
        (ok(body={"ok": "true"}), 200, "ok=true", None),
        (ok(body={"ok": 1}), 200, "ok=true", "expected true"),
        (ok(body="OK"), 200, "checks.db.status=up", "checks.db.status=missing"),
        # status codes
        (ok(204, ""), 204, "any", None),
        (ok(200), 204, "ok", "health answered HTTP 200, not 204"),
        (ok(503, {"ok": False}), 200, "ok", "HTTP 503, not 200"),
        # a redirect is a failure whatever is expected
        ({"status": 302, "body": "", "location": "/login"}, 200, "any", "a redirect to /login"),
        ({"status": 301, "body": ""}, 200, "any", "HTTP 301 (a redirect)"),
        ({"status": None, "error": "x unreachable: refused"}, 200, "any", "unreachable"),
    ],
)
def test_health_shapes(response: dict, status: int, rule: str, problem: str | None) -> None:
    verdict = judge_health(response, {}, status, rule)
    if problem is None:
        assert verdict is None
    else:
        assert verdict is not None and problem in verdict


@pytest.mark.parametrize(
    ("body", "expect", "problem"),
    [
        ({"status": "ok", "db_backend": "postgresql"}, {"db_backend": "postgresql"}, None),
        (
            {"status": "ok", "db_backend": "sqlite"},
            {"db_backend": "postgresql"},
            "health reports db_backend='sqlite', expected 'postgresql'",
        ),
        ({"status": "ok"}, {"alembic_revision": "abc"}, "alembic_revision=None"),
        # revisions that look like numbers are still compared as written
        ({"status": "ok", "alembic_revision": "1e5"}, {"alembic_revision": "1e5"}, None),
        ({"status": "ok", "alembic_revision": "0012"}, {"alembic_revision": "0012"}, None),
        ({"status": "ok", "alembic_revision": None}, {"alembic_revision": "abc"}, "=None"),
        ({"status": "ok", "a": {"b": 2}}, {"a.b": "2"}, None),
    ],
)
def test_expect_items_still_work(body: dict, expect: dict, problem: str | None) -> None:
    verdict = judge_health({"status": 200, "body": body}, expect)
    assert verdict == problem if problem is None else problem in verdict


def test_expect_items_with_another_body_rule() -> None:
    body = {"checks": {"db": {"status": "up"}}, "db_backend": "postgresql"}
    assert (
        judge_health(ok(body=body), {"db_backend": "postgresql"}, 200, "checks.db.status=up")
        is None
    )
    assert "db_backend" in judge_health(ok(body=body), {"db_backend": "sqlite"}, 200, "any")


@pytest.mark.parametrize(
    "rule", ["json:", "json:{nope", "a=1,", "=x", "has space=1", "checks..db=up", ""]
)
def test_malformed_rules_are_refused(rule: str) -> None:
    with pytest.raises(ValueError):
        parse_body_rule(rule)


def test_body_problem_names_what_answered() -> None:
    assert body_problem({"type": "x"}, "type=ready", what="the WebSocket").startswith(
        "the WebSocket reports type="
    )


def test_settings_default_is_todays_rule() -> None:
    settings = load_settings({})
    assert (settings.health_status, settings.health_body) == (200, "ok")
    assert load_settings({"health_body": " text:OK "}).health_body == "text:OK"
    assert load_settings({"health_body": "checks.db.status=up"}).health_body
    assert load_settings({"health_status": 204}).health_status == 204


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("health_status", 302, "other than a redirect"),
        ("health_status", "200", "an HTTP status"),
        ("health_status", 42, "an HTTP status"),
        ("health_body", "json:{", "ok, any, json:<JSON value>"),
        ("health_body", 5, "ok, any"),
    ],
)
def test_bad_health_settings_are_one_line(key: str, value: object, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({key: value})
    assert message in str(error.value) and "\n" not in str(error.value)
