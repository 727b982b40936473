"""``redact`` on login tokens and Authorization headers, the shapes an app's error answer or a
failing request's message puts them in. The values here are shorter than the shortest literal
secret, so only the patterns can mask them: a pattern that stops masking ``*token*`` keys or the
Authorization header fails these."""

import json

import pytest

from turnout.dsn import redact

VALUE = "abc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token={VALUE}", "token=***"),
        (f"GET /cb?token={VALUE}&next=/", "GET /cb?token=***"),
        (f"ACCESS_TOKEN={VALUE} ./run", "ACCESS_TOKEN=*** ./run"),
        (f'access_token: "{VALUE}"', "access_token: ***"),
        (f"access_token: {VALUE}", "access_token: ***"),
        (f"refresh_token:{VALUE}", "refresh_token:***"),
        (f'{{"access_token": "{VALUE}", "token_type": "bearer"}}', None),
        (f"{{'token': '{VALUE}'}}", "{'token': '***'}"),
        (f"X-Auth-Token: {VALUE}", "X-Auth-Token: ***"),
        (f'{{"detail": "token: {VALUE} expired"}}', '{"detail": "token: *** expired"}'),
        (f"Authorization: Bearer {VALUE}", "Authorization: Bearer ***"),
        (f"Authorization: Token {VALUE}", "Authorization: Token ***"),
        (f"authorization: token {VALUE}", "authorization: token ***"),
        (f"Authorization: Basic {VALUE}==", "Authorization: Basic ***"),
        (f"Authorization: {VALUE}", "Authorization: ***"),
        (f"Proxy-Authorization: Bearer {VALUE}", "Proxy-Authorization: Bearer ***"),
        (f'{{"Authorization": "Bearer {VALUE}"}}', '{"Authorization": "Bearer ***"}'),
        (f"{{'authorization': 'Token {VALUE}'}}", "{'authorization': 'Token ***'}"),
        (
            f"500 Internal Server Error\nHost: app\nAuthorization: Token {VALUE}\nAccept: */*",
            "500 Internal Server Error\nHost: app\nAuthorization: Token ***\nAccept: */*",
        ),
    ],
)
def test_tokens_and_authorization_headers_are_masked(text: str, expected: str | None) -> None:
    masked = redact(text)

    assert VALUE not in masked, masked
    if expected is not None:
        assert masked == expected


def test_json_access_token_keeps_its_shape() -> None:
    masked = redact(f'{{"access_token": "{VALUE}", "token_type": "bearer"}}')

    assert masked.startswith('{"access_token": "***", "token_type": ')


@pytest.mark.parametrize(
    "text",
    [
        "Authorization header missing",
        "call /me with 'Token <token>'",
        "without a token at 'data.token' (setting smoke_token_path)",
        "GET /admin/report as user answered HTTP 200, expected 403",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        f'access_token: "{VALUE}"',
        f"Authorization: Bearer {VALUE}",
        f'{{"Authorization": "Token {VALUE}"}}',
        f"X-Auth-Token: {VALUE}",
    ],
)
def test_masking_is_idempotent(text: str) -> None:
    once = redact(text)

    assert redact(once) == once


@pytest.mark.parametrize(
    "document",
    [
        {"/srv/evidence/smoke/secrets": None, "/srv/secrets/x": {"mode": "0700"}},
        {"token_count": 3, "secret_ok": True, "password_env": "DB_PASSWORD"},
        {"error": f"bad token: {VALUE} here", "note": "token:", "n": 1},
        {"error": f'got Authorization: Token {VALUE}"x', "h": f"Authorization: Bearer {VALUE}\\"},
        {"message": f'access_token: "{VALUE}", next', "list": [f"password: {VALUE},b", "c"]},
        {"x": f"password={VALUE}", "y": f"token='{VALUE}'", "z": f'PGPASSWORD={VALUE}"q\\c d'},
        {"nested": json.dumps({"Authorization": f"Bearer {VALUE}"})},
    ],
)
def test_a_json_document_stays_json(document: dict) -> None:
    """The host program's answers are redacted as whole JSON documents: no pattern may run past
    the end of a string."""
    masked = redact(json.dumps(document))

    assert json.loads(masked).keys() == document.keys()
    assert VALUE not in masked, masked
