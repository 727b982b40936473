"""smoke-core's sample writes and per-endpoint callers against a small real HTTP app on loopback
(``http.server`` in a thread): the item path of a route with a trailing slash, a failed read
back that still removes the item, a removal that fails and names the item left behind, and
endpoints called as the normal user or without a token."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from turnout.smoke import (
    Credentials,
    SmokeConfig,
    SmokeCredentials,
    item_path,
    run_smoke,
)

TOKENS = {"admin@example.com": "tok-admin-1", "user@example.com": "tok-user-2"}


class ItemsApp:
    """FastAPI-template-like routes: POST /api/v1/items/ creates, /api/v1/items/<id> reads and
    deletes (no trailing slash), /api/v1/users/me answers any logged-in caller. ``broken_read``
    makes every read of an item answer 500."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.next_id = 1
        self.broken_read = False
        self.calls: list[tuple[str, str, str]] = []


def handler_for(app: ItemsApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def caller(self) -> str:
            auth = self.headers.get("Authorization", "")
            for email, token in TOKENS.items():
                if auth == f"Bearer {token}":
                    return email
            return ""

        def answer(self, status: int, body: object = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.body()
            if self.path == "/login":
                fields = json.loads(raw)
                token = TOKENS.get(fields.get("email"))
                if token and fields.get("password") == "pw":
                    return self.answer(200, {"access_token": token})
                return self.answer(401, {"detail": "bad login"})
            who = self.caller()
            self.calls.append(("POST", self.path, who))
            if self.path == "/api/v1/items/" and who:
                item = {**json.loads(raw), "id": str(app.next_id)}
                app.items[item["id"]] = item
                app.next_id += 1
                return self.answer(200, item)
            return self.answer(404 if who else 401, {"detail": "no"})

        @property
        def calls(self) -> list:
            return app.calls

        def item(self) -> str | None:
            prefix = "/api/v1/items/"
            rest = self.path[len(prefix):] if self.path.startswith(prefix) else ""
            return rest if rest and "/" not in rest else None

        def do_GET(self) -> None:  # noqa: N802
            who = self.caller()
            self.calls.append(("GET", self.path, who))
            if not who:
                return self.answer(401, {"detail": "login"})
            if self.path == "/api/v1/users/me":
                return self.answer(200, {"email": who})
            if self.path == "/api/v1/users/":
                return self.answer(200 if who == "admin@example.com" else 403, [])
            item = self.item()
            if item is not None and app.broken_read:
                return self.answer(500, {"detail": "broken"})
            if item in app.items:
                return self.answer(200, app.items[item])
            return self.answer(404, {"detail": "Not Found"})

        def do_DELETE(self) -> None:  # noqa: N802
            who = self.caller()
            self.calls.append(("DELETE", self.path, who))
            item = self.item()
            if who and item in app.items:
                del app.items[item]
                return self.answer(200, {"ok": True})
            return self.answer(404, {"detail": "Not Found"})

    return Handler


@pytest.fixture
def app() -> Iterator[tuple[ItemsApp, str]]:
    state = ItemsApp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def config(base_url: str, **overrides: object) -> SmokeConfig:
    settings: dict = {
        "base_url": base_url,
        "login_path": "/login",
        "endpoints": ("/api/v1/users/me=200",),
        "admin_path": "/api/v1/users/",
        "denied_status": (401,),
        "ws_path": "",
        "writes": 1,
        "write_path": "/api/v1/items/",
        "write_body": '{"title": "turnout smoke {n}"}',
    }
    settings.update(overrides)
    return SmokeConfig(**settings)


ADMIN = Credentials("admin@example.com", "pw")
USER = Credentials("user@example.com", "pw")


def test_the_item_path_of_a_route_with_a_trailing_slash_has_no_double_slash() -> None:
    assert item_path("", "/api/v1/items/", 12) == "/api/v1/items/12"
    assert item_path("", "/api/v1/notes", 12) == "/api/v1/notes/12"
    assert item_path("/api/v1/items/{id}/", "/api/v1/items/", "a b") == "/api/v1/items/a%20b/"


def test_a_write_through_a_trailing_slash_route_is_read_back_removed_and_gone(app) -> None:
    state, url = app
    report, failures = run_smoke(config(url), SmokeCredentials(ADMIN))
    assert failures == []
    assert state.items == {}  # nothing of the smoke stays in the app's data
    checks = [row["check"] for row in report["checks"]]
    assert checks[-4:] == ["sample write 0", "sample read 0", "sample removal 0", "sample gone 0"]
    assert {row["path"] for row in report["checks"][-3:]} == {"/api/v1/items/{id}"}
    assert ("GET", "/api/v1/items/1", "admin@example.com") in state.calls


def test_a_failed_read_back_still_removes_the_item(app) -> None:
    state, url = app
    state.broken_read = True
    report, failures = run_smoke(config(url), SmokeCredentials(ADMIN))
    assert len(failures) == 2, failures  # the read back (500) and the read after removal (500)
    assert "read back of sample write 0" in failures[0] and "500" in failures[0]
    assert ("DELETE", "/api/v1/items/1", "admin@example.com") in state.calls
    assert state.items == {}


def test_an_item_that_cannot_be_removed_is_named_with_its_id(app) -> None:
    state, url = app
    report, failures = run_smoke(
        config(url, item_path="/api/v1/items/{id}/"), SmokeCredentials(ADMIN)
    )
    assert state.items, "the wrong item path leaves the item (the app keeps it)"
    assert len(failures) == 2, failures
    assert "read back of sample write 0" in failures[0]
    removal = failures[1]
    assert "the sample item 1 stays in the app's data" in removal
    assert "DELETE /api/v1/items/1/" in removal and "smoke_item_path" in removal
    assert report["verdict"] == "fail"
    assert "sample gone 0" not in [row["check"] for row in report["checks"]]


def test_endpoints_say_who_calls_them(app) -> None:
    state, url = app
    endpoints = (
        "/api/v1/users/me=200",
        "user:/api/v1/users/me=200",
        "anonymous:/api/v1/users/me=401",
    )
    report, failures = run_smoke(
        config(url, endpoints=endpoints, writes=0), SmokeCredentials(ADMIN, USER)
    )
    assert failures == []
    me = [call for call in state.calls if call[:2] == ("GET", "/api/v1/users/me")]
    assert [who for *_, who in me] == ["admin@example.com", "user@example.com", ""]
    rows = [(row["check"], row["path"]) for row in report["checks"]]
    assert ("GET as user", "/api/v1/users/me") in rows
    assert ("GET as anonymous", "/api/v1/users/me") in rows


def test_an_endpoint_of_the_normal_user_fails_without_the_user(app) -> None:
    _, url = app
    report, failures = run_smoke(
        config(url, endpoints=("user:/api/v1/users/me=200",), writes=0), SmokeCredentials(ADMIN)
    )
    assert len(failures) == 1 and "TURNOUT_SMOKE_USER_EMAIL" in failures[0]


def test_a_user_endpoint_answering_the_wrong_status_fails(app) -> None:
    _, url = app
    report, failures = run_smoke(
        config(url, endpoints=("user:/api/v1/users/=200",), writes=0, admin_path=""),
        SmokeCredentials(ADMIN, USER),
    )
    assert failures == ["GET /api/v1/users/ as user answered HTTP 403, expected 200"]


def test_the_plan_names_the_item_path_and_the_callers() -> None:
    plan = config(
        "http://app", endpoints=("user:/me=200", "anonymous:/items=401")
    ).plan(has_user=True)
    assert "/me as the normal user (200)" in plan and "/items as the anonymous caller (401)" in plan
    assert "DELETE and gone at /api/v1/items/{id}" in plan
