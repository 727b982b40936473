"""
DSN handling: normalise, split, redact, and hand passwords to libpq tools safely.

This module is also shipped verbatim to the hosts and concatenated in front of the host-side
script, so it uses only the standard library and psycopg (imported lazily, so that ``redact``
works on a host without psycopg), never imports ``turnout``, has no ``from __future__`` import and
runs nothing at import time besides definitions. It imports whole modules (``urllib.parse``, not
``from urllib.parse import quote``) so that names defined by the script it is concatenated with
cannot shadow what it calls.

Rules it enforces (SPEC S0.9, S1.9; RELIABILITY 20-22, 29):

- libpq tools only ever see ``postgresql://`` URLs or keyword DSNs; SQLAlchemy-style schemes
  such as ``postgresql+psycopg://`` are converted first.
- A password reaches a child process through its environment only (``PGPASSWORD``, set for
  that child by ``libpq_env``), never through argv.
- Every message, exception and captured output goes through ``redact``; ``DsnError`` messages
  never contain the password.
"""

import collections.abc
import re
import urllib.parse

MASK = "***"

# Schemes libpq understands as they are.
LIBPQ_SCHEMES = ("postgresql", "postgres")

# SQLAlchemy-style schemes converted to ``postgresql://`` (SPEC S0.9).
SQLALCHEMY_SCHEMES = (
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "postgresql+pg8000",
)

# Secrets shorter than this are not masked as literal strings (it would shred ordinary text).
MIN_LITERAL_SECRET = 4

_DSN_FIX = (
    "use a URL like postgresql://user@host:5432/dbname (percent-encode special characters "
    "in the password) or a keyword DSN like 'host=db.example dbname=app user=app'"
)

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

# Any key that looks like it holds a secret: password, sslpassword, PGPASSWORD, DB_PASSWORD,
# passwd, JWT_SECRET, SECRET_KEY, ACCESS_TOKEN...
_SECRET_KEY = r"[A-Za-z0-9_]*(?:password|passwd|secret|token)[A-Za-z0-9_]*"

# key=value with a libpq/shell single-quoted, double-quoted or bare value. A bare value stops at
# a double quote that no backslash escapes: inside a JSON string that quote ends the string.
_ASSIGNMENT_RE = re.compile(
    r"(?<![A-Za-z0-9_])(" + _SECRET_KEY + r"\s*=\s*)"
    r"('(?:\\.|[^'\\])*'?|\"(?:\\.|[^\"\\])*\"?|(?:\\.|[^\s'\"\\])(?:\\.|[^\s\"\\])*)",
    re.IGNORECASE,
)

# "password": "value" / 'password': 'value' (JSON, Python reprs of dicts).
_QUOTED_KEY_RE = re.compile(
    r"([\"'])(" + _SECRET_KEY + r")\1(\s*:\s*)(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*')",
    re.IGNORECASE,
)

# password: value / access_token: "value" / X-Auth-Token: value (YAML, HTTP headers, logs). A
# quoted key is left to _QUOTED_KEY_RE. redact also runs over whole JSON documents (the host
# program's answers), so the value never runs past a quote, comma or bracket that is not its own:
# a quoted value is closed on the same line without a comma, a bare value stops at ' " , } ].
_COLON_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9_])(" + _SECRET_KEY + r"\s*:[ \t]*)"
    r"(\"(?:\\.|[^\"\\\n,])*\"|'(?:\\.|[^'\\\n,])*'|(?:\\.|[^\s'\",}\]\\])+)",
    re.IGNORECASE,
)

# Authorization: Bearer value / Token value / Basic value / value, as a header line or as a
# quoted key ("Authorization": "Bearer value", also JSON-escaped); the scheme is kept, the
# credentials (up to a quote, backslash or space) masked.
_AUTHORIZATION_RE = re.compile(
    r"(?<![A-Za-z0-9_])((?:proxy-)?authorization(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?"
    r"(?:[A-Za-z][A-Za-z0-9_-]*[ \t]+)?)"
    r"([^\s'\"\\]+)",
    re.IGNORECASE,
)

# scheme://user:password@ in free text. The password part is greedy up to the last "@" of the
# token, so an unencoded "@" or "/" in a password is still masked (over-masking is the safe side).
_USERINFO_RE = re.compile(
    r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s:/@'\"<>]*):([^\s'\"<>]*)@",
)

# The same for a single DSN: no character is excluded from the password.
_DSN_USERINFO_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^:/@]*):(.*)@", re.DOTALL)

# ?password=... / &password=... in a URL query.
_URL_QUERY_SECRET_RE = re.compile(
    r"([?&]" + _SECRET_KEY + r"=)[^&#]*",
    re.IGNORECASE,
)

# The value of a password keyword in a DSN that may not parse (used to mask error messages).
_KEYWORD_PASSWORD_RE = re.compile(
    r"(?<![A-Za-z0-9_])password\s*=\s*('(?:\\.|[^'\\])*'?|(?:\\.|[^\s\\])*)",
    re.IGNORECASE,
)

# "fragment" quoted by libpq in its error messages.
_QUOTED_FRAGMENT_RE = re.compile(r'"([^"]*)"')


class DsnError(ValueError):
    """
    A DSN is missing, malformed or not a PostgreSQL DSN. The message never holds the password.
    """


def redact(text: str, secrets: collections.abc.Iterable[str] = ()) -> str:
    """
    Mask passwords in free text: logs, exception messages, command output.

    Masks URL userinfo passwords (``scheme://user:pass@``), ``password=…``-like assignments
    (quoted or not, including ``PGPASSWORD=…`` and ``token=…``), ``"password": "…"`` pairs,
    ``access_token: …`` lines, the credentials of an ``Authorization: <scheme> …`` header, and
    every literal string in ``secrets`` (also percent-encoded). Secrets shorter than 4
    characters are not masked as literals. Anything that is not a string is passed through
    ``str()`` first.

    + text: the text to clean
    + secrets: literal values to mask wherever they appear

    Example:

    .. code:: python

        redact("connect postgresql+psycopg://app:hunter22@db/app failed")
        # 'connect postgresql+psycopg://app:***@db/app failed'
        redact("PGPASSWORD='a b' pg_dump", secrets=["tok3n-value"])
        # 'PGPASSWORD=*** pg_dump'
        redact("request had Authorization: Bearer eyJhbGciOi.x")
        # 'request had Authorization: Bearer ***'
    """
    if not isinstance(text, str):
        text = str(text)
    text = _mask_literals(text, secrets)
    text = _USERINFO_RE.sub(_mask_userinfo, text)
    text = _QUOTED_KEY_RE.sub(_mask_quoted_key, text)
    text = _AUTHORIZATION_RE.sub(_mask_assignment, text)
    text = _COLON_KEY_RE.sub(_mask_assignment, text)
    return _ASSIGNMENT_RE.sub(_mask_assignment, text)


def redact_dsn(dsn: str) -> str:
    """
    Return the same DSN with its password replaced by ``***``; never raises.

    Works on URL DSNs (the password may be percent-encoded, or not encoded at all) and on keyword
    DSNs (values may be quoted with spaces and escaped quotes, per libpq rules).

    + dsn: the DSN to show

    Example:

    .. code:: python

        redact_dsn("postgresql://app:s%40cret@db:5432/app")
        # 'postgresql://app:***@db:5432/app'
        redact_dsn("host=db password='it\\'s secret' dbname=app")
        # 'host=db password=*** dbname=app'
    """
    if not isinstance(dsn, str):
        return MASK
    text = dsn.strip()
    if _SCHEME_RE.match(text):
        masked, found = _DSN_USERINFO_RE.subn(_mask_userinfo, text, count=1)
        masked, found_in_query = _URL_QUERY_SECRET_RE.subn(r"\1" + MASK, masked)
        found += found_in_query
    else:
        masked, found = _ASSIGNMENT_RE.subn(_mask_assignment, text)
    if not found:
        # Nothing recognisable as a password field: mask what libpq would read as one.
        masked = _mask_literals(masked, _guess_passwords(text))
    return masked


def normalize_dsn(dsn: str) -> str:
    """
    Return a DSN libpq accepts, or raise ``DsnError`` saying what is wrong and how to fix it.

    ``postgresql://`` and ``postgres://`` URLs and keyword DSNs are kept as they are (stripped);
    SQLAlchemy-style ``postgresql+psycopg://``, ``+psycopg2``, ``+asyncpg`` and ``+pg8000`` URLs
    become ``postgresql://``. Anything else (``mysql://``, ``sqlite://``, garbage, empty) raises.

    + dsn: a URL or keyword DSN

    Example:

    .. code:: python

        normalize_dsn("postgresql+psycopg://app@db:5432/app")
        # 'postgresql://app@db:5432/app'
        normalize_dsn("host=db dbname=app")
        # 'host=db dbname=app'
    """
    if not isinstance(dsn, str):
        raise DsnError(f"the DSN must be a string, got {type(dsn).__name__}; {_DSN_FIX}")
    text = dsn.strip()
    if not text:
        raise DsnError(f"the DSN is empty; {_DSN_FIX}")

    match = _SCHEME_RE.match(text)
    if match:
        scheme = match.group(1).lower()
        if scheme in SQLALCHEMY_SCHEMES:
            text = "postgresql" + text[match.end(1) :]
        elif scheme in LIBPQ_SCHEMES:
            text = scheme + text[match.end(1) :]
        else:
            raise DsnError(
                f"unsupported DSN scheme {scheme!r} in {redact_dsn(text)}: turnout needs a "
                f"PostgreSQL DSN; {_DSN_FIX}",
            )

    parts = _parse_conninfo(text)
    _check_port(parts.get("port"), text)
    return text


def dsn_parts(dsn: str) -> dict[str, str]:
    """
    Return the normalised DSN as a dict of libpq keywords (``host``, ``port``, ``dbname``…).

    + dsn: a URL or keyword DSN

    Example:

    .. code:: python

        dsn_parts("postgresql+psycopg://app:pw@db:5433/app")
        # {'user': 'app', 'password': 'pw', 'dbname': 'app', 'host': 'db', 'port': '5433'}
    """
    return _parse_conninfo(normalize_dsn(dsn))


def libpq_env(dsn: str) -> tuple[str, dict[str, str]]:
    """
    Split a DSN into a password-free keyword DSN for argv and an env dict for the child process.

    The password never goes on a command line (any local user can read argv in ``ps``); pass the
    returned env to the child process only (``subprocess.run(..., env={**os.environ, **env})``).

    + dsn: a URL or keyword DSN

    Example:

    .. code:: python

        libpq_env("postgresql://app:pw@db:5432/app")
        # ('user=app dbname=app host=db port=5432', {'PGPASSWORD': 'pw'})
    """
    from psycopg.conninfo import make_conninfo

    parts = dsn_parts(dsn)
    password = parts.pop("password", None)
    conninfo = make_conninfo("", **parts)
    env = {"PGPASSWORD": password} if password else {}
    return conninfo, env


def _parse_conninfo(text: str) -> dict[str, str]:
    """``psycopg.conninfo.conninfo_to_dict`` with psycopg's error message redacted."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(text)
    except psycopg.Error as exc:
        reason = _redact_libpq_message(str(exc), text)
        raise DsnError(f"the DSN does not parse ({reason}); {_DSN_FIX}") from None
    return {key: str(value) for key, value in parts.items() if value is not None}


def _check_port(port: str | None, text: str) -> None:
    """Raise ``DsnError`` unless every port in a (comma-separated) port list is a number."""
    if port is None:
        return
    for item in port.split(","):
        if item and not item.isdigit():
            raise DsnError(
                f"the DSN {redact_dsn(text)} has a port that is not a number; use a numeric "
                f"port, e.g. postgresql://user@host:5432/dbname or 'host=db port=5432'",
            )


def _redact_libpq_message(message: str, dsn: str) -> str:
    """
    Mask whatever a libpq parse error echoes from the DSN.

    libpq quotes pieces of the DSN in its messages (``missing "=" after "def"``, which may be
    the second word of a password). A quoted piece is kept only if it is a keyword name (it is
    followed by ``=`` in the DSN); other pieces taken from the DSN become ``***``.
    """
    message = " ".join(message.split())

    def mask_fragment(match: re.Match[str]) -> str:
        fragment = match.group(1)
        if not fragment or fragment not in dsn or fragment in ("=", ":", "/"):
            return match.group(0)
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", fragment) and re.search(
            r"(?<![^\s?&])" + re.escape(fragment) + r"\s*=",
            dsn,
        ):
            return match.group(0)
        return '"' + MASK + '"'

    message = _QUOTED_FRAGMENT_RE.sub(mask_fragment, message)
    return redact(message, secrets=_guess_passwords(dsn))


def _guess_passwords(dsn: str) -> list[str]:
    """Best-effort password candidates in a DSN that may not parse (for masking only)."""
    candidates: list[str] = []
    match = _DSN_USERINFO_RE.match(dsn.strip())
    if match:
        candidates += [match.group(3), urllib.parse.unquote(match.group(3))]
    for match in _KEYWORD_PASSWORD_RE.finditer(dsn):
        value = match.group(1)
        candidates.append(value)
        if value.startswith("'"):
            value = value[1:-1] if value.endswith("'") and len(value) > 1 else value[1:]
        candidates.append(re.sub(r"\\(.)", r"\1", value))
    return [candidate for candidate in candidates if candidate]


def _mask_literals(text: str, secrets: collections.abc.Iterable[str]) -> str:
    """Replace each secret (and its percent-encoded and libpq-quoted forms) with ``***``."""
    forms: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, str) or len(secret) < MIN_LITERAL_SECRET:
            continue
        forms.update(
            (
                secret,
                urllib.parse.quote(secret, safe=""),
                urllib.parse.quote(secret),
                urllib.parse.quote_plus(secret),
                secret.replace("\\", "\\\\").replace("'", "\\'"),
            ),
        )
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}:{MASK}@"


def _mask_assignment(match: re.Match[str]) -> str:
    return match.group(1) + MASK


def _mask_quoted_key(match: re.Match[str]) -> str:
    key_quote, key, separator, value = match.groups()
    return f"{key_quote}{key}{key_quote}{separator}{value[0]}{MASK}{value[0]}"
