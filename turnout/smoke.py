"""smoke-core (SPEC S0.6, S2.8): log in as a user would, call the core endpoints, prove the admin
endpoint is reserved to admins, and open the WebSocket — from the control machine, over HTTP(S).

Credentials come from the operator, never from settings: ``TURNOUT_SMOKE_EMAIL`` and
``TURNOUT_SMOKE_PASSWORD`` in the environment, or asked without echo (``getpass``) when stdin is a
terminal; optionally a normal user's ``TURNOUT_SMOKE_USER_EMAIL``/``TURNOUT_SMOKE_USER_PASSWORD``
for the 403 check. They live in this process's memory only: never in argv, logs or evidence. A
deploy calls ``smoke_credentials()`` while it loads, so missing credentials stop the run with one
line before any step changed anything::

    from turnout.smoke import core_arguments, smoke_credentials
    smoke_credentials()  # one line and a non-zero exit when missing in a non-interactive run
    smoke.core(name="Smoke: core", **core_arguments(run.settings), record=run.output("smoke.json"))

The rules (status lists, endpoint items, the token's path in the login answer, the WebSocket auth
message) are pure functions here, unit-tested; ``run_smoke`` does the HTTP and WebSocket work.
Every message goes through ``turnout.dsn.redact`` with the passwords and tokens as literal
secrets; tokens only ever travel in headers and WebSocket messages, never in URLs; redirects are
failures; TLS is always verified.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote

from pyinfra.api.exceptions import PyinfraError

from turnout.dsn import redact
from turnout.hostside.web import body_problem, value_at

EMAIL_ENV = "TURNOUT_SMOKE_EMAIL"
PASSWORD_ENV = "TURNOUT_SMOKE_PASSWORD"
USER_EMAIL_ENV = "TURNOUT_SMOKE_USER_EMAIL"
USER_PASSWORD_ENV = "TURNOUT_SMOKE_USER_PASSWORD"
TOKEN_PLACEHOLDER = "{token}"
LOGIN_BODIES = ("json", "form")

_PATH_RE = re.compile(r"/[^\s]*")
_TOKEN_PATH_RE = re.compile(r"[A-Za-z0-9_$@-]+(?:\.[A-Za-z0-9_$@-]+)*")
# Loggers that could print a request (httpx: URLs; websockets: frames, i.e. the auth message).
_QUIET_LOGGERS = ("httpx", "httpcore", "websockets", "hpack", "h2")


class SmokeError(PyinfraError):
    """A smoke-core input the run cannot work with (credentials); pyinfra prints the one line
    without a traceback."""


@dataclass(frozen=True)
class Credentials:
    """One account's email and password; ``repr`` never shows the password."""

    email: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SmokeCredentials:
    """The admin's credentials and, optionally, a normal user's (for the 403 check)."""

    admin: Credentials
    user: Credentials | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The passwords, for redaction."""
        users = (self.admin, self.user) if self.user else (self.admin,)
        return tuple(each.password for each in users)


_LOADED: list[SmokeCredentials] = []


def smoke_credentials(
    environ: Mapping[str, str] | None = None,
    interactive: bool | None = None,
    ask: Callable[[str], str] | None = None,
) -> SmokeCredentials:
    """
    The smoke credentials, read once per process: from the environment, else asked without echo
    when stdin is a terminal; ``SmokeError`` (one line naming the variables) when they are
    missing in a non-interactive run. Call it while the deploy loads.

    + environ: where to read the variables (default ``os.environ``)
    + interactive: whether to ask (default: stdin is a terminal)
    + ask: the prompt function (default ``getpass.getpass``)

    Example:

    .. code:: python

        creds = smoke_credentials({"TURNOUT_SMOKE_EMAIL": "a@x", "TURNOUT_SMOKE_PASSWORD": "pw"})
        creds.admin.email  # 'a@x'
        repr(creds.admin)  # "Credentials(email='a@x')"
    """
    if _LOADED and environ is None:
        return _LOADED[0]
    env = os.environ if environ is None else environ
    if interactive is None:
        interactive = bool(sys.stdin and sys.stdin.isatty())
    if ask is None:
        import getpass

        ask = getpass.getpass
    email, password = env.get(EMAIL_ENV, ""), env.get(PASSWORD_ENV, "")
    if (not email or not password) and interactive:
        email = email or ask("smoke-core admin email: ").strip()
        password = password or ask("smoke-core admin password: ")
    if not email or not password:
        raise SmokeError(
            f"smoke-core needs the admin's credentials: set {EMAIL_ENV} and {PASSWORD_ENV} in "
            "the environment (or run in a terminal to be asked); nothing was changed"
        )
    user_email, user_password = env.get(USER_EMAIL_ENV, ""), env.get(USER_PASSWORD_ENV, "")
    if bool(user_email) != bool(user_password):
        raise SmokeError(
            f"set both {USER_EMAIL_ENV} and {USER_PASSWORD_ENV} (a normal user for the 403 "
            "check) or neither; nothing was changed"
        )
    user = Credentials(user_email, user_password) if user_email else None
    loaded = SmokeCredentials(Credentials(email, password), user)
    if environ is None:
        _LOADED[:] = [loaded]
    return loaded


# Rules -----------------------------------------------------------------------------------------


def parse_statuses(value: object) -> tuple[int, ...]:
    """
    Expected HTTP statuses: an int, a list of ints, or ``"401,403"`` / ``"401|403"``;
    ``ValueError`` unless each is 100-599 and not a redirect (3xx never passes).

    >>> parse_statuses(200), parse_statuses("401,403"), parse_statuses([401, "403"])
    ((200,), (401, 403), (401, 403))
    """
    if isinstance(value, bool):
        raise ValueError("a status is a number")
    if isinstance(value, int):
        items: list[object] = [value]
    elif isinstance(value, str):
        items = [part for part in re.split(r"[,|]", value) if part.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError("statuses are a number or a list like 401,403")
    codes = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit():
            raise ValueError(f"{text!r} is not an HTTP status")
        code = int(text)
        if not 100 <= code <= 599 or 300 <= code <= 399:
            raise ValueError(f"{code} is not an HTTP status a check may expect (no 3xx)")
        codes.append(code)
    if not codes:
        raise ValueError("at least one status is needed")
    return tuple(codes)


class Endpoint(NamedTuple):
    """One core endpoint: who calls it, the path, the statuses that pass."""

    who: str
    path: str
    statuses: tuple[int, ...]


IDENTITIES = ("admin", "user", "anonymous")
_CALLER = {"admin": "admin", "user": "normal user", "anonymous": "anonymous caller"}


def parse_endpoint(item: str) -> Endpoint:
    """
    One core endpoint item, ``[<who>:]<path>=<status>[|<status>…]``; ``who`` is ``admin`` (the
    default), ``user`` (the normal user) or ``anonymous`` (no token). ``ValueError`` when
    malformed.

    >>> parse_endpoint("/api/v1/me=200")
    Endpoint(who='admin', path='/api/v1/me', statuses=(200,))
    >>> parse_endpoint("user:/items?limit=1=200|204")
    Endpoint(who='user', path='/items?limit=1', statuses=(200, 204))
    """
    text = str(item).strip()
    who, colon, rest = text.partition(":")
    if colon and who in IDENTITIES:
        text = rest
    else:
        who = "admin"
    path, equals, statuses = text.rpartition("=")
    if not equals or not _PATH_RE.fullmatch(path):
        raise ValueError(
            f"{item!r} is not [admin:|user:|anonymous:]<path>=<status>, e.g. /api/v1/me=200"
        )
    return Endpoint(who, path, parse_statuses(statuses.replace("|", ",")))


def item_path(template: str, write_path: str, item_id: object) -> str:
    """
    Where one sample item is read and deleted: ``template`` with ``{id}`` replaced, or, when
    the template is empty, ``write_path`` (without its trailing slash) ``/<id>``.

    >>> item_path("", "/api/v1/items/", 7), item_path("/api/v1/items/{id}/", "/x", "a1")
    ('/api/v1/items/7', '/api/v1/items/a1/')
    """
    if template:
        return template.replace("{id}", quote(str(item_id), safe=""))
    return f"{write_path.rstrip('/')}/{quote(str(item_id), safe='')}"


def check_item_path(template: str) -> str:
    """An item path template: "" or a path holding ``{id}``; ``ValueError`` otherwise.

    >>> check_item_path("/api/v1/items/{id}")
    '/api/v1/items/{id}'
    """
    if template == "":
        return template
    if not isinstance(template, str) or "{id}" not in template or not _PATH_RE.fullmatch(
        template
    ):
        raise ValueError(f"{template!r} is not a path holding {{id}}, e.g. /api/v1/items/{{id}}")
    return template


def token_at(answer: object, path: str) -> str | None:
    """
    The token in a login answer at a dotted ``path``, or None when there is none (or not text).

    >>> token_at({"access_token": "abc"}, "access_token")
    'abc'
    >>> token_at({"data": {"token": "xyz"}}, "data.token"), token_at({"data": {}}, "data.token")
    ('xyz', None)
    """
    value = value_at(answer, path)
    return value if isinstance(value, str) and value else None


def check_token_path(path: str) -> str:
    """A dotted path like ``data.token``; ``ValueError`` otherwise."""
    if not isinstance(path, str) or not _TOKEN_PATH_RE.fullmatch(path):
        raise ValueError("a dotted path like access_token or data.token")
    return path


def auth_message_template(value: object) -> str:
    """
    The WebSocket auth message as text with a ``{token}`` placeholder: a string, or a JSON
    object/list (what ``--data smoke_ws_auth={"jwt":"{token}"}`` gives). ``ValueError`` without
    the placeholder.

    >>> auth_message_template({"action": "login", "jwt": "{token}"})
    '{"action": "login", "jwt": "{token}"}'
    """
    text = json.dumps(value) if isinstance(value, dict | list) else value
    if not isinstance(text, str) or TOKEN_PLACEHOLDER not in text:
        raise ValueError('a message holding {token}, e.g. {"type": "auth", "token": "{token}"}')
    return text


def render_auth_message(template: str, token: str) -> str:
    """
    The auth message with the token in place (in memory only). In a JSON template the token is
    inserted JSON-escaped.

    >>> render_auth_message('{"type": "auth", "token": "{token}"}', 'a"b')
    '{"type": "auth", "token": "a\\\\"b"}'
    >>> render_auth_message("AUTH {token}", "t1")
    'AUTH t1'
    """
    try:
        json.loads(template.replace(TOKEN_PLACEHOLDER, "x"))
    except ValueError:
        return template.replace(TOKEN_PLACEHOLDER, token)
    return template.replace(TOKEN_PLACEHOLDER, json.dumps(token)[1:-1])


def websocket_url(base_url: str, path: str) -> str:
    """
    The WebSocket URL for ``path`` under ``base_url`` (``http`` → ``ws``, ``https`` → ``wss``).

    >>> websocket_url("https://app.example/", "/api/v1/ws")
    'wss://app.example/api/v1/ws'
    """
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + path


def status_problem(what: str, got: int | None, expected: Iterable[int], location: str = "") -> str:
    """
    Why a status is not one of the expected ones ("" when it is).

    >>> status_problem("GET /me as admin", 302, (200,), "/login")
    'GET /me as admin answered HTTP 302 (a redirect to /login), expected 200'
    >>> status_problem("GET /me", 200, (200,))
    ''
    """
    expected = tuple(expected)
    if got in expected:
        return ""
    shown = " or ".join(str(code) for code in expected)
    redirect = ""
    if got is not None and 300 <= got <= 399:
        redirect = f" (a redirect to {location})" if location else " (a redirect)"
    return f"{what} answered HTTP {got}{redirect}, expected {shown}"


# The checks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeConfig:
    """What ``run_smoke`` checks; built from the settings by ``core_arguments``."""

    base_url: str
    login_path: str = "/api/v1/auth/login"
    login_body: str = "json"
    username_field: str = "email"
    password_field: str = "password"
    token_path: str = "access_token"
    auth_scheme: str = "Bearer"
    endpoints: tuple[str, ...] = ("/api/v1/me=200",)
    admin_path: str = "/api/v1/admin/stats"
    admin_status: tuple[int, ...] = (200,)
    denied_status: tuple[int, ...] = (401, 403)
    user_status: tuple[int, ...] = (403,)
    ws_path: str = "/api/v1/ws"
    ws_auth: str = '{"type": "auth", "token": "{token}"}'
    ws_expect: str = "type=ready"
    timeout: float = 10.0
    writes: int = 0
    write_path: str = "/api/v1/meters"
    write_body: str = '{"unit_id": 990001, "kind": "turnout-smoke", "slot": {n}, "value": 1.5}'
    write_id: str = "id"
    item_path: str = ""

    def plan(self, has_user: bool | None = None) -> str:
        """What the checks will do, in one sentence (``--dry``)."""
        calls = [
            f"{path}{'' if who == 'admin' else ' as the ' + _CALLER[who]} "
            f"({' or '.join(map(str, codes))})"
            for who, path, codes in self.core()
        ]
        if self.admin_path:
            codes = "/".join(map(str, self.admin_status))
            denied = "/".join(map(str, self.denied_status))
            calls.append(f"{self.admin_path} as admin ({codes}) and without a token ({denied})")
            if has_user is not False:
                user = "/".join(map(str, self.user_status))
                when = "" if has_user else f" when {USER_EMAIL_ENV} is set"
                calls.append(f"{self.admin_path} as the normal user ({user}){when}")
        text = (
            f"Will log in at {self.base_url}{self.login_path} ({self.login_body}: "
            f"{self.username_field}/{self.password_field} from {EMAIL_ENV}/{PASSWORD_ENV}), "
            f"call {', '.join(calls) or 'no endpoint'} with '{self.auth_scheme} <token>'"
        )
        if self.ws_path:
            text += f", and open the WebSocket {websocket_url(self.base_url, self.ws_path)}"
        if self.writes:
            text += (
                f"; then {self.writes} sample write(s): POST {self.write_path}, read back, "
                f"DELETE and gone at {self.item_template()}"
            )
        return text

    def item_template(self) -> str:
        """Where a sample item is read and deleted, ``{id}`` standing for its id."""
        return self.item_path or f"{self.write_path.rstrip('/')}/{{id}}"

    def core(self) -> list[Endpoint]:
        """The core endpoints, each with who calls it."""
        return [parse_endpoint(item) for item in self.endpoints]


def core_arguments(settings: object) -> dict:
    """
    The arguments of ``smoke.core`` from turnout's settings (``run.settings``).

    Example:

    .. code:: python

        from turnout.settings import load_settings
        core_arguments(load_settings({}))["login_path"]  # '/api/v1/auth/login'
    """
    return {
        "base_url": settings.base_url,
        "login_path": settings.smoke_login_path,
        "login_body": settings.smoke_login_body,
        "username_field": settings.smoke_username_field,
        "password_field": settings.smoke_password_field,
        "token_path": settings.smoke_token_path,
        "auth_scheme": settings.smoke_auth_scheme,
        "endpoints": settings.smoke_endpoints,
        "admin_path": settings.smoke_admin_path,
        "admin_status": settings.smoke_admin_status,
        "denied_status": settings.smoke_denied_status,
        "user_status": settings.smoke_user_status,
        "ws_path": settings.smoke_ws_path,
        "ws_auth": settings.smoke_ws_auth,
        "ws_expect": settings.smoke_ws_expect,
        "timeout": settings.http_timeout_s,
        "writes": settings.smoke_writes,
        "write_path": settings.smoke_write_path,
        "write_body": settings.smoke_write_body,
        "write_id": settings.smoke_write_id,
        "item_path": settings.smoke_item_path,
    }


def quiet_http_loggers() -> None:
    """Keep httpx, httpcore and websockets from logging requests and frames (URLs, the auth
    message) whatever pyinfra's verbosity: only their warnings pass."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class _Smoke:
    """One smoke run: the checks' rows, the failures, and the secrets to mask."""

    def __init__(self, config: SmokeConfig, credentials: SmokeCredentials) -> None:
        self.config = config
        self.credentials = credentials
        self.secrets: list[str] = list(credentials.secrets)
        self.rows: list[dict] = []
        self.failures: list[str] = []

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    def record(
        self, check: str, path: str, expected: Iterable[int] | str, got: object, problem: str
    ) -> bool:
        problem = self.clean(problem)
        self.rows.append(
            {
                "check": check,
                "path": path,
                "expected": list(expected) if not isinstance(expected, str) else expected,
                "got": got,
                "ok": not problem,
                "problem": problem or None,
            }
        )
        if problem:
            self.failures.append(problem)
        return not problem

    def request(self, client, method: str, path: str, what: str, **kwargs: object):
        """One request; None (and a failure recorded by the caller) when it did not complete."""
        import httpx

        url = self.config.base_url + path
        try:
            return client.request(method, url, **kwargs), ""
        except httpx.HTTPError as error:
            reason = str(error) or type(error).__name__
            return None, f"{what} at {url} failed: {type(error).__name__}: {reason}"

    def login(self, client, account: Credentials, who: str) -> str | None:
        config = self.config
        fields = {config.username_field: account.email, config.password_field: account.password}
        body = {"json": fields} if config.login_body == "json" else {"data": fields}
        what = f"login as the {who}"
        response, problem = self.request(client, "POST", config.login_path, what, **body)
        got = response.status_code if response is not None else None
        if response is not None:
            problem = status_problem(
                f"{what} at {config.base_url}{config.login_path}",
                got,
                (200,),
                response.headers.get("location", ""),
            )
            if got == 401 or got == 403 or got == 422:
                names = f"{EMAIL_ENV}/{PASSWORD_ENV}" if who == "admin" else USER_EMAIL_ENV
                problem += f" (check {names} and the login settings)"
        token = None
        if not problem:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            token = token_at(answer, config.token_path)
            if token is None:
                problem = (
                    f"{what} answered 200 without a token at {config.token_path!r} "
                    "(setting smoke_token_path)"
                )
            else:
                self.secrets.append(token)
        self.record(f"login ({who})", config.login_path, (200,), got, problem)
        return token

    def call(self, client, path: str, token: str | None, who: str, expected: tuple[int, ...]):
        headers = {"Authorization": f"{self.config.auth_scheme} {token}"} if token else {}
        what = f"GET {path} as {who}"
        response, problem = self.request(client, "GET", path, what, headers=headers)
        got = response.status_code if response is not None else None
        if response is not None:
            location = response.headers.get("location", "")
            problem = status_problem(what, got, expected, location)
        self.record(f"GET as {who}", path, expected, got, problem)

    def sample_write(self, client, token: str, number: int) -> None:
        """S2.8: one write through the app's API as the admin, read back, removed, and gone.
        Rows are recorded without the id (it differs every run: the report must not); a write
        that could not be removed is named with its id, so nobody has to hunt for it. The
        DELETE is tried whatever the read back said."""
        config = self.config
        headers = {"Authorization": f"{config.auth_scheme} {token}"}
        body = write_body(config.write_body, number)
        what = f"sample write {number} (POST {config.write_path})"
        at = config.item_template()
        response, problem = self.request(
            client, "POST", config.write_path, what, headers=headers, json=body
        )
        got = response.status_code if response is not None else None
        if response is not None:
            problem = status_problem(what, got, (200, 201), response.headers.get("location", ""))
        created = None
        if not problem:
            try:
                created = value_at(response.json(), config.write_id)
            except ValueError:
                created = None
            if not isinstance(created, int | str) or isinstance(created, bool) or created == "":
                created = None
            if created is None:
                problem = (
                    f"{what} answered {got} without an id at {config.write_id!r} (setting "
                    "smoke_write_id): the item it created, if any, stays in the app's data"
                )
        if not self.record(f"sample write {number}", config.write_path, (200, 201), got, problem):
            return
        item = item_path(config.item_path, config.write_path, created)
        read, problem = self.request(client, "GET", item, f"read back of {what}", headers=headers)
        got = read.status_code if read is not None else None
        if read is not None:
            problem = status_problem(f"read back of {what} at {at}", got, (200,))
            if not problem:
                try:
                    stored = read.json()
                except ValueError:
                    stored = None
                wrong = [
                    k for k, v in body.items() if not isinstance(stored, dict) or stored.get(k) != v
                ]
                if wrong:
                    problem = f"read back of {what} differs in {', '.join(wrong)}"
        self.record(f"sample read {number}", at, (200,), got, problem)
        gone, problem = self.request(client, "DELETE", item, f"removal of {what}", headers=headers)
        got = gone.status_code if gone is not None else None
        if gone is not None:
            problem = status_problem(f"removal of {what} at {at}", got, (200, 202, 204))
        if problem:
            problem += (
                f"; the sample item {created} stays in the app's data: remove it by hand "
                f"(DELETE {item}), and check smoke_item_path"
            )
        if not self.record(f"sample removal {number}", at, (200, 202, 204), got, problem):
            return
        after, problem = self.request(
            client, "GET", item, f"read after removing {what}", headers=headers
        )
        got = after.status_code if after is not None else None
        if after is not None:
            problem = status_problem(f"read after removing {what}", got, (404, 410))
        self.record(f"sample gone {number}", at, (404, 410), got, problem)

    def websocket(self, token: str) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
        from websockets.sync.client import connect

        config = self.config
        url = websocket_url(config.base_url, config.ws_path)
        got: object = None
        silent = logging.getLogger("turnout.smoke.websocket")
        silent.disabled = True
        try:
            with connect(
                url,
                open_timeout=config.timeout,
                close_timeout=config.timeout,
                logger=silent,
                max_size=1_000_000,
            ) as ws:
                ws.send(render_auth_message(config.ws_auth, token))
                raw = ws.recv(timeout=config.timeout)
            try:
                answer: object = json.loads(raw)
            except ValueError:
                answer = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            problem = body_problem(answer, config.ws_expect, what="the WebSocket") or ""
            got = "answered" if not problem else "unexpected answer"
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            got = f"closed {code}"
            problem = f"the WebSocket {url} closed ({code} {reason}) after the auth message"
        except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as error:
            got = "no connection"
            problem = f"the WebSocket {url} failed: {type(error).__name__}: {error}"
        self.record("WebSocket", config.ws_path, config.ws_expect, got, problem)


def write_body(template: str, number: int) -> dict:
    """The JSON body of sample write ``number`` (``{n}`` replaced).

    >>> write_body('{"slot": {n}, "kind": "smoke"}', 3)
    {'slot': 3, 'kind': 'smoke'}
    """
    return json.loads(template.replace("{n}", str(number)))


def run_smoke(config: SmokeConfig, credentials: SmokeCredentials) -> tuple[dict, list[str]]:
    """
    Run the checks from this machine: the report (deterministic: no timings, no token, no
    password, no email) and the failures (each one redacted line; empty when all passed).

    Example:

    .. code:: python

        report, failures = run_smoke(SmokeConfig("http://127.0.0.1:18080"), smoke_credentials())
    """
    import httpx

    quiet_http_loggers()
    smoke = _Smoke(config, credentials)
    try:
        with httpx.Client(
            verify=True, follow_redirects=False, timeout=config.timeout, headers={"Accept": "*/*"}
        ) as client:
            token = smoke.login(client, credentials.admin, "admin")
            if token:
                endpoints = config.core()
                user_token = None
                wants_user = any(e.who == "user" for e in endpoints)
                if credentials.user and (wants_user or config.admin_path):
                    user_token = smoke.login(client, credentials.user, "normal user")
                elif wants_user:
                    smoke.record(
                        "login (normal user)", config.login_path, (200,), None,
                        f"an endpoint is called as the normal user: set {USER_EMAIL_ENV} and "
                        f"{USER_PASSWORD_ENV}",
                    )
                tokens = {"admin": token, "user": user_token, "anonymous": None}
                for who, path, expected in endpoints:
                    if who != "user" or user_token:
                        smoke.call(client, path, tokens[who], who, expected)
                if config.admin_path:
                    smoke.call(client, config.admin_path, token, "admin", config.admin_status)
                    smoke.call(client, config.admin_path, None, "anonymous", config.denied_status)
                    if user_token:
                        smoke.call(
                            client, config.admin_path, user_token, "user", config.user_status
                        )
                if config.ws_path:
                    smoke.websocket(token)
                for number in range(config.writes):
                    smoke.sample_write(client, token, number)
    except Exception as error:  # noqa: BLE001 - any surprise is one redacted line, not a traceback
        smoke.failures.append(smoke.clean(f"smoke-core failed: {type(error).__name__}: {error}"))
    report = {
        "base_url": config.base_url,
        "checks": smoke.rows,
        "verdict": "fail" if smoke.failures else "pass",
        "failures": smoke.failures,
    }
    return report, smoke.failures


def report_text(report: dict) -> str:
    """The report as kept in evidence: sorted keys, so the same result is the same bytes."""
    return json.dumps(report, indent=2, sort_keys=True) + "\n"
