"""smoke-core's rules: statuses, endpoint items, token paths, the WebSocket message, credentials."""

import json

import pytest

from turnout.settings import SettingsError, load_settings
from turnout.smoke import (
    EMAIL_ENV,
    PASSWORD_ENV,
    USER_EMAIL_ENV,
    USER_PASSWORD_ENV,
    SmokeConfig,
    SmokeError,
    auth_message_template,
    core_arguments,
    parse_endpoint,
    parse_statuses,
    render_auth_message,
    smoke_credentials,
    status_problem,
    token_at,
    websocket_url,
)


@pytest.mark.parametrize(
    ("value", "codes"),
    [
        (200, (200,)),
        ("401,403", (401, 403)),
        ("401|403", (401, 403)),
        ([401, 403], (401, 403)),
        ((403,), (403,)),
        (" 204 ", (204,)),
    ],
)
def test_statuses(value: object, codes: tuple[int, ...]) -> None:
    assert parse_statuses(value) == codes


@pytest.mark.parametrize("value", [302, "301,200", "abc", True, "", 99, 600, None, [200, "x"]])
def test_bad_statuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_statuses(value)


@pytest.mark.parametrize(
    ("item", "parsed"),
    [
        ("/api/v1/me=200", ("admin", "/api/v1/me", (200,))),
        ("/me=200|204", ("admin", "/me", (200, 204))),
        ("/search?q=a=200", ("admin", "/search?q=a", (200,))),
        ("user:/api/v1/users/me=200", ("user", "/api/v1/users/me", (200,))),
        ("anonymous:/api/v1/items=401", ("anonymous", "/api/v1/items", (401,))),
        ("admin:/me=200", ("admin", "/me", (200,))),
    ],
)
def test_endpoint_items(item: str, parsed: tuple) -> None:
    assert parse_endpoint(item) == parsed


@pytest.mark.parametrize(
    "item", ["/me", "me=200", "/me=302", "/me=", "/a b=200", "=200", "root:/me=200", "user:=200"]
)
def test_bad_endpoint_items(item: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(item)


@pytest.mark.parametrize(
    ("answer", "path", "token"),
    [
        ({"access_token": "t1", "token_type": "bearer"}, "access_token", "t1"),
        ({"data": {"token": "t2"}}, "data.token", "t2"),
        ({"data": [{"token": "t3"}]}, "data.0.token", "t3"),
        ({"data": {"token": ""}}, "data.token", None),
        ({"data": {"token": 5}}, "data.token", None),
        ({"access_token": "t1"}, "data.token", None),
        ("not json", "access_token", None),
        (None, "access_token", None),
    ],
)
def test_token_by_path(answer: object, path: str, token: str | None) -> None:
    assert token_at(answer, path) == token


def test_expected_codes_messages() -> None:
    assert status_problem("GET /me as admin", 200, (200,)) == ""
    assert status_problem("GET /x as anonymous", 403, (401, 403)) == ""
    assert (
        status_problem("GET /x as user", 200, (403,))
        == "GET /x as user answered HTTP 200, expected 403"
    )
    assert "a redirect to /login" in status_problem("login", 303, (200,), "/login")
    assert status_problem("login", None, (200,)) == "login answered HTTP None, expected 200"


def test_auth_message_keeps_the_token_in_memory_only() -> None:
    template = auth_message_template({"action": "login", "jwt": "{token}"})
    assert json.loads(render_auth_message(template, 'a"b\\c')) == {
        "action": "login",
        "jwt": 'a"b\\c',
    }
    assert render_auth_message("TOKEN {token}", "abc") == "TOKEN abc"
    with pytest.raises(ValueError):
        auth_message_template({"type": "auth"})


def test_websocket_url() -> None:
    assert websocket_url("http://127.0.0.1:1", "/ws") == "ws://127.0.0.1:1/ws"
    assert websocket_url("https://app.example", "/ws") == "wss://app.example/ws"


def test_settings_defaults_fit_the_reference_app() -> None:
    arguments = core_arguments(load_settings({}))
    config = SmokeConfig(**arguments)
    assert config.login_path == "/api/v1/auth/login" and config.login_body == "json"
    assert config.core() == [("admin", "/api/v1/me", (200,))]
    assert (config.admin_status, config.denied_status, config.user_status) == (
        (200,),
        (401, 403),
        (403,),
    )
    plan = config.plan()
    assert plan.startswith("Will log in at http://127.0.0.1:18080/api/v1/auth/login")
    assert "ws://127.0.0.1:18080/api/v1/ws" in plan


def test_smoke_settings_from_the_command_line() -> None:
    # What pyinfra's --data gives: ints for numbers, dicts for JSON objects, strings otherwise.
    settings = load_settings(
        {
            "smoke_login_body": "form",
            "smoke_token_path": "data.token",
            "smoke_endpoints": "/me=200,/items=200|204",
            "smoke_denied_status": 401,
            "smoke_user_status": "403",
            "smoke_ws_auth": {"action": "login", "jwt": "{token}"},
            "smoke_ws_expect": "event=welcome",
            "smoke_admin_path": "",
        }
    )
    assert settings.smoke_endpoints == ("/me=200", "/items=200|204")
    assert settings.smoke_denied_status == (401,) and settings.smoke_user_status == (403,)
    assert json.loads(settings.smoke_ws_auth) == {"action": "login", "jwt": "{token}"}
    assert settings.smoke_admin_path == ""


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("smoke_login_body", "xml"),
        ("smoke_token_path", "data..token"),
        ("smoke_endpoints", "/me"),
        ("smoke_denied_status", "302"),
        ("smoke_ws_auth", {"type": "auth"}),
        ("smoke_ws_expect", "json:{"),
        ("smoke_auth_scheme", "Bearer x"),
        ("smoke_username_field", "a b"),
    ],
)
def test_bad_smoke_settings(key: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"setting {key} must be"):
        load_settings({key: value})


def test_credentials_from_the_environment_never_shown() -> None:
    env = {EMAIL_ENV: "admin@x.test", PASSWORD_ENV: "s3cret-pw"}
    creds = smoke_credentials(env, interactive=False)
    assert creds.admin.password == "s3cret-pw" and creds.user is None
    assert "s3cret-pw" not in repr(creds)
    env |= {USER_EMAIL_ENV: "u@x.test", USER_PASSWORD_ENV: "u-pw-123"}
    creds = smoke_credentials(env, interactive=False)
    assert creds.user.email == "u@x.test" and creds.secrets == ("s3cret-pw", "u-pw-123")


def test_missing_credentials_non_interactive_is_one_line() -> None:
    with pytest.raises(SmokeError) as error:
        smoke_credentials({}, interactive=False)
    message = str(error.value)
    assert EMAIL_ENV in message and PASSWORD_ENV in message and "\n" not in message
    with pytest.raises(SmokeError, match=USER_PASSWORD_ENV):
        smoke_credentials(
            {EMAIL_ENV: "a@x", PASSWORD_ENV: "pw12", USER_EMAIL_ENV: "u@x"}, interactive=False
        )


def test_credentials_are_asked_without_echo_on_a_terminal() -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "admin@x.test" if "email" in prompt else "typed-pw"

    creds = smoke_credentials({}, interactive=True, ask=ask)
    assert (creds.admin.email, creds.admin.password) == ("admin@x.test", "typed-pw")
    assert len(asked) == 2


def test_http_loggers_never_log_requests() -> None:
    import logging

    from turnout.smoke import quiet_http_loggers

    logging.getLogger("httpx").setLevel(logging.DEBUG)
    quiet_http_loggers()
    for name in ("httpx", "httpcore", "websockets", "websockets.client"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
