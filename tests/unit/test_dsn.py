"""turnout.dsn: normalisation, redaction, and passing passwords to libpq tools (S0.9, S1.9)."""

import ast
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from turnout import dsn as dsn_module
from turnout.dsn import (
    DsnError,
    dsn_parts,
    libpq_env,
    normalize_dsn,
    redact,
    redact_dsn,
)

CANARY = "Canary-Pw_9x!@:/%"
CANARY_URL = quote(CANARY, safe="")
URL_DSN = f"postgresql://app:{CANARY_URL}@db.internal:5433/appdb?sslmode=prefer"
KEYWORD_DSN = f"host=db.internal port=5433 dbname=appdb user=app password='{CANARY}'"


def assert_no_canary(text: str) -> None:
    assert CANARY not in text
    assert CANARY_URL not in text
    # No long piece of it either (a libpq message can echo part of a password).
    assert "Canary-Pw" not in text


# --- normalize_dsn ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheme",
    ["postgresql+psycopg", "postgresql+psycopg2", "postgresql+asyncpg", "postgresql+pg8000"],
)
def test_sqlalchemy_schemes_become_postgresql(scheme):
    dsn = f"{scheme}://app:{CANARY_URL}@db:5432/appdb"

    assert normalize_dsn(dsn) == f"postgresql://app:{CANARY_URL}@db:5432/appdb"


def test_sqlalchemy_scheme_is_matched_case_insensitively():
    assert normalize_dsn("PostgreSQL+Psycopg://app@db/appdb") == "postgresql://app@db/appdb"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app@db:5432/appdb",
        "postgres://app@db/appdb",
        "host=db dbname=appdb user=app",
        "host=/var/run/postgresql dbname=appdb",
        "postgresql://app@db1:5432,db2:5433/appdb",
    ],
)
def test_libpq_dsns_are_kept(dsn):
    assert normalize_dsn(dsn) == dsn


def test_surrounding_whitespace_is_stripped():
    assert normalize_dsn("  postgresql://app@db/appdb\n") == "postgresql://app@db/appdb"


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        (f"mysql://app:{CANARY_URL}@db/appdb", "mysql"),
        ("sqlite:///srv/app/app.db", "sqlite"),
        (f"postgresql+unknown://app:{CANARY_URL}@db/appdb", "postgresql+unknown"),
        ("garbage", "does not parse"),
        (f"postgresql://app:{CANARY}@db/appdb", "does not parse"),
        (f"host=db password='{CANARY}", "does not parse"),
        (f"host=db port=fivefour password='{CANARY}'", "port"),
        (f"postgresql://app:{CANARY_URL}@db:notaport/appdb", "port"),
    ],
)
def test_bad_dsns_raise_without_the_password(dsn, says):
    with pytest.raises(DsnError) as raised:
        normalize_dsn(dsn)

    message = str(raised.value)
    assert says in message
    assert "postgresql://user@host:5432/dbname" in message  # the fix
    assert_no_canary(message)
    assert_no_canary(repr(raised.value))
    # psycopg's own exception (which echoes the DSN) is not chained into tracebacks.
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_libpq_message_echoing_part_of_a_password_is_masked():
    # libpq reads "Pw-second-word" as a keyword and says: missing "=" after "Pw-second-word".
    with pytest.raises(DsnError) as raised:
        normalize_dsn("host=db password=first Pw-second-word dbname=x")

    assert "Pw-second-word" not in str(raised.value)
    assert '"***"' in str(raised.value)


def test_libpq_message_keeps_a_misspelled_keyword():
    with pytest.raises(DsnError, match='invalid connection option "pasword"'):
        normalize_dsn("host=db pasword=x")


def test_non_string_dsn_raises():
    with pytest.raises(DsnError, match="must be a string"):
        normalize_dsn(None)  # type: ignore[arg-type]


def test_dsn_parts_decodes_the_converted_url():
    parts = dsn_parts(f"postgresql+psycopg://app:{CANARY_URL}@db:5433/appdb")

    assert parts == {
        "user": "app",
        "password": CANARY,
        "host": "db",
        "port": "5433",
        "dbname": "appdb",
    }


# --- redact_dsn ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (URL_DSN, "postgresql://app:***@db.internal:5433/appdb?sslmode=prefer"),
        (
            f"postgresql+psycopg://app:{CANARY_URL}@db/appdb",
            "postgresql+psycopg://app:***@db/appdb",
        ),
        (f"postgresql://app:{CANARY}@db/appdb", "postgresql://app:***@db/appdb"),
        (
            f"postgresql://db/appdb?password={CANARY_URL}&sslmode=require",
            "postgresql://db/appdb?password=***&sslmode=require",
        ),
        (KEYWORD_DSN, "host=db.internal port=5433 dbname=appdb user=app password=***"),
        (
            "host=db password='it\\'s a Canary-Pw s3cret' dbname=appdb",
            "host=db password=*** dbname=appdb",
        ),
        ("host=db password = Canary-Pw_bare user=app", "host=db password = *** user=app"),
        ("postgresql://app@db/appdb", "postgresql://app@db/appdb"),
        ("host=db dbname=appdb", "host=db dbname=appdb"),
    ],
)
def test_redact_dsn(dsn, expected):
    assert redact_dsn(dsn) == expected


@pytest.mark.parametrize("dsn", [URL_DSN, KEYWORD_DSN])
def test_redacted_dsn_still_parses_with_a_masked_password(dsn):
    redacted = redact_dsn(dsn)

    assert_no_canary(redacted)
    assert conninfo_to_dict(redacted)["password"] == "***"
    assert conninfo_to_dict(redacted)["host"] == "db.internal"


# --- redact -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"connect to postgresql+psycopg://app:{CANARY_URL}@db/appdb failed",
            "connect to postgresql+psycopg://app:***@db/appdb failed",
        ),
        (f"redis://:{CANARY_URL}@127.0.0.1:6390/0", "redis://:***@127.0.0.1:6390/0"),
        (f"url=postgresql://app:{CANARY}@db/appdb.", "url=postgresql://app:***@db/appdb."),
        (f"PGPASSWORD={CANARY} pg_dump -Fc", "PGPASSWORD=*** pg_dump -Fc"),
        (f"export PGPASSWORD='{CANARY} x'; psql", "export PGPASSWORD=***; psql"),
        (f"host=db password='{CANARY} x' dbname=d", "host=db password=*** dbname=d"),
        (f'POSTGRES_PASSWORD="{CANARY}"\nOTHER=1', "POSTGRES_PASSWORD=***\nOTHER=1"),
        (f"{{'host': 'db', 'password': '{CANARY}'}}", "{'host': 'db', 'password': '***'}"),
        (f'{{"password": "{CANARY}", "port": 5432}}', '{"password": "***", "port": 5432}'),
        ("host=db port=5432 dbname=appdb user=app", "host=db port=5432 dbname=appdb user=app"),
        ("see https://example.org/docs#x", "see https://example.org/docs#x"),
    ],
)
def test_redact_masks_passwords_in_free_text(text, expected):
    assert redact(text) == expected


def test_redact_masks_literal_secrets_and_their_encoded_forms():
    text = f"raw {CANARY} url {CANARY_URL} form {quote(CANARY)} end"

    assert redact(text, secrets=[CANARY]) == "raw *** url *** form *** end"


def test_redact_ignores_short_secrets():
    assert redact("the cat sat on a mat", secrets=["at", "cat"]) == "the cat sat on a mat"
    assert redact("the cats sat", secrets=["cats"]) == "the *** sat"


def test_redact_is_idempotent():
    text = f"{URL_DSN} and {KEYWORD_DSN} and PGPASSWORD={CANARY}"

    once = redact(text, secrets=[CANARY])

    assert_no_canary(once)
    assert redact(once, secrets=[CANARY]) == once


def test_redact_accepts_exceptions():
    error = RuntimeError(f"failed: postgresql://app:{CANARY_URL}@db/appdb")

    assert redact(error) == "failed: postgresql://app:***@db/appdb"


# --- libpq_env ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [URL_DSN, KEYWORD_DSN, URL_DSN.replace("postgresql", "postgresql+psycopg")],
)
def test_libpq_env_keeps_the_password_out_of_the_dsn(dsn):
    conninfo, env = libpq_env(dsn)

    assert_no_canary(conninfo)
    assert "password" not in conninfo
    assert env == {"PGPASSWORD": CANARY}
    assert conninfo_to_dict(conninfo) == {
        "host": "db.internal",
        "port": "5433",
        "dbname": "appdb",
        "user": "app",
        **({"sslmode": "prefer"} if "sslmode" in dsn else {}),
    }


def test_libpq_env_without_password_has_an_empty_env():
    conninfo, env = libpq_env("postgresql://app@db/appdb")

    assert env == {}
    assert conninfo_to_dict(conninfo) == {"host": "db", "dbname": "appdb", "user": "app"}


def test_libpq_env_rejects_bad_dsns():
    with pytest.raises(DsnError):
        libpq_env(f"mysql://app:{CANARY_URL}@db/appdb")


# --- shipping constraints -----------------------------------------------------------------


SOURCE = Path(dsn_module.__file__).read_text()


def test_module_is_self_contained():
    tree = ast.parse(SOURCE)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])

    assert "__future__" not in imported
    assert imported <= {"collections", "os", "re", "urllib", "psycopg"}


def test_module_runs_only_definitions_at_import_time():
    tree = ast.parse(SOURCE)
    allowed = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.ClassDef)
    for node in tree.body:
        is_docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        assert is_docstring or isinstance(node, allowed), ast.dump(node)[:80]
        if isinstance(node, ast.Assign | ast.AnnAssign):
            for call in ast.walk(node):
                if isinstance(call, ast.Call):
                    assert ast.unparse(call.func) == "re.compile", ast.unparse(node)[:80]


def test_module_works_concatenated_with_a_script_that_reuses_names():
    # The host-side script is appended to this module; its own imports must not break ours.
    script = SOURCE + "\nfrom shlex import quote\nfrom os.path import join as unquote\n"
    namespace: dict = {"__name__": "hostside"}

    exec(compile(script, "hostside.py", "exec"), namespace)  # noqa: S102

    assert namespace["redact"](f"x {CANARY_URL} y", secrets=[CANARY]) == "x *** y"
    assert namespace["redact_dsn"](f"postgresql://app:{CANARY}@db/x") == "postgresql://app:***@db/x"
