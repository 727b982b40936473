"""smoke-core (S0.6, S2.8): log in, call the core endpoints, check the admin endpoint's refusals
and the WebSocket, from the control machine as a user would (``turnout.smoke``).

A smoke check changes nothing in the app. It runs only while executing (pyinfra runs an
operation's generator again then); while planning it says what it will call. Its results are kept
as JSON in the evidence directory (rewritten only when they differ: a rerun reports no change),
and a failure fails the step with one redacted line.
"""

from pyinfra import host
from pyinfra.api import operation

from turnout.facts.evidence import FileDigest
from turnout.failures import fail_command
from turnout.memo import observe
from turnout.operations.evidence import keep_text
from turnout.smoke import (
    SmokeConfig,
    SmokeError,
    auth_message_template,
    check_item_path,
    parse_statuses,
    report_text,
    run_smoke,
    smoke_credentials,
)


@operation()
def core(
    base_url: str,
    login_path: str = "/api/v1/auth/login",
    login_body: str = "json",
    username_field: str = "email",
    password_field: str = "password",
    token_path: str = "access_token",
    auth_scheme: str = "Bearer",
    endpoints: tuple[str, ...] = ("/api/v1/me=200",),
    admin_path: str = "/api/v1/admin/stats",
    admin_status: tuple[int, ...] = (200,),
    denied_status: tuple[int, ...] = (401, 403),
    user_status: tuple[int, ...] = (403,),
    ws_path: str = "/api/v1/ws",
    ws_auth: str = '{"type": "auth", "token": "{token}"}',
    ws_expect: str = "type=ready",
    timeout: float = 10.0,
    record: str | None = None,
    writes: int = 0,
    write_path: str = "/api/v1/meters",
    write_body: str = '{"unit_id": 990001, "kind": "turnout-smoke", "slot": {n}, "value": 1.5}',
    write_id: str = "id",
    item_path: str = "",
):
    """
    smoke-core from the control machine: log in with ``TURNOUT_SMOKE_EMAIL``/``_PASSWORD``
    (``turnout.smoke.smoke_credentials``, called while the deploy loads), call each core endpoint
    with ``Authorization: <auth_scheme> <token>``, call the admin endpoint as the admin, without a
    token and (when ``TURNOUT_SMOKE_USER_EMAIL``/``_PASSWORD`` are set) as a normal user, and open
    the WebSocket with the auth message. Redirects fail, TLS is verified, each request has
    ``timeout``. Results (path, expected, got, ok; never a token, password or email) are kept in
    ``record``; the first failure fails the step with one line.

    + base_url: the app's URL as users reach it (``https://app.example``)
    + login_path / login_body (``json`` or ``form``) / username_field / password_field: the login
    + token_path: dotted path of the token in the login answer (``data.token``)
    + auth_scheme: ``Bearer``, ``Token``…
    + endpoints: ``[who:]path=status`` items, called as the admin unless ``who`` says ``user``
      (the normal user) or ``anonymous`` (no token): ``/api/v1/me=200``, ``user:/api/v1/me=200``,
      ``anonymous:/api/v1/items=401``
    + admin_path: the admin-only endpoint ("" skips); admin_status, denied_status (no token),
      user_status (normal user): the statuses expected
    + ws_path: the WebSocket path ("" skips); ws_auth: first message, ``{token}`` replaced in
      memory; ws_expect: rule for its answer (``type=ready``, see ``health_body``)
    + record: ``<run_dir>/outputs/smoke.json`` on the host
    + writes: sample writes (S2.8): each POSTs ``write_body`` (``{n}`` = its number) to
      ``write_path`` as the admin, reads it back at ``item_path`` (a template holding ``{id}``;
      "" is ``<write_path without its trailing slash>/{id}``; ``write_id``: the id's dotted path
      in the answer), DELETEs it (even when the read back failed; an item it could not remove
      is named with its id) and checks it is gone (404); 0 = none

    .. code:: python

        from turnout.operations import smoke
        from turnout.smoke import core_arguments, smoke_credentials

        smoke_credentials()  # while the deploy loads: one line when they are missing
        smoke.core(
            name="Smoke: core",
            **core_arguments(run.settings),
            record=run.output("smoke.json"),
        )
        smoke.core(
            name="Smoke: another app",
            base_url="http://127.0.0.1:18081",
            login_path="/auth/token",
            login_body="form",
            username_field="username",
            token_path="data.token",
            auth_scheme="Token",
            endpoints=("/me=200",),
            admin_path="/admin/report",
            ws_path="/socket",
            ws_auth='{"action": "login", "jwt": "{token}"}',
            ws_expect="event=welcome",
        )
    """
    config = SmokeConfig(
        base_url=base_url.rstrip("/"),
        login_path=login_path,
        login_body=login_body,
        username_field=username_field,
        password_field=password_field,
        token_path=token_path,
        auth_scheme=auth_scheme,
        endpoints=tuple(endpoints),
        admin_path=admin_path,
        admin_status=parse_statuses(admin_status),
        denied_status=parse_statuses(denied_status),
        user_status=parse_statuses(user_status),
        ws_path=ws_path,
        ws_auth=auth_message_template(ws_auth),
        ws_expect=ws_expect,
        timeout=timeout,
        writes=writes,
        write_path=write_path,
        write_body=write_body,
        write_id=write_id,
        item_path=check_item_path(item_path),
    )
    config.core()  # malformed endpoint items fail here, while planning
    if not host.state.is_executing:
        try:
            credentials = smoke_credentials()
        except SmokeError:
            credentials = None  # the deploy's own call reports it while loading
        host.log(config.plan(has_user=credentials.user is not None if credentials else None))
        if record is None or observe(FileDigest, path=record).get("exists"):
            host.noop("smoke-core runs when executing; it changes nothing in the app")
            return
        pending = {"base_url": config.base_url, "checks": [], "verdict": "pending"}
        yield from keep_text(record, report_text(pending))
        return
    try:
        credentials = smoke_credentials()
    except SmokeError as error:
        yield fail_command([str(error)])
        return
    report, failures = run_smoke(config, credentials)
    if not failures:
        shown = ", ".join(f"{row['check']} {row['path']}" for row in report["checks"])
        host.log(f"smoke-core passed against {config.base_url}: {shown}")
    if record:
        yield from keep_text(record, report_text(report))
    if failures:
        yield fail_command(failures)
