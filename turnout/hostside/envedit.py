"""Rewrite some keys of a server-side ``.env`` and nothing else (SPEC S3.5: the phases).

Only the values of the keys asked for change: every other line, comment, blank line, quoting
style, ``export`` prefix, inline comment and line ending is kept byte for byte, and so is the
order (one exception, said in the plan: a key whose new value refers to a variable defined
*below* it is moved to the end of the file, since compose expands only variables defined above a
line). A key not in the file is appended (an empty value for a missing key is left out: compose
reads both as empty). A key defined more than once has every definition rewritten (the last one
wins in compose; no stale copy of an old value is left above it).

Values are compose templates (``${NAME}`` expands, ``$$`` is a literal ``$``): a value is written
in the quoting style its line already uses when that style reads it back exactly, else
double-quoted with ``\\`` and ``"`` escaped, so ``${PG_DATABASE_URL}`` stays an interpolation.
What was written is read back with compose's own rules (``turnout.hostside.envfile``): each key
must expand to its template's value and every other key to what it was; else nothing is written.

The file is replaced atomically (a temporary file in the same directory, fsync, rename, directory
fsync) with the original's mode and owner; the old file is first copied to ``backup_path``
(0600, never overwritten). The diff and every value shown are redacted: keys that look secret
(``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``…) show ``***``, DSN passwords are masked
(``turnout.dsn``), and the literal secrets found in the file are masked everywhere else.

Stdlib only (and turnout.dsn), no ``from __future__``: this module is shipped to the hosts.

    >>> rewrite_text('A=1\\nexport B="x" # keep\\n', {"B": "${A}"})[0]
    'A=1\\nexport B="${A}" # keep\\n'
"""

import difflib
import grp
import hashlib
import os
import pwd
import re
import stat
import tempfile

from turnout.dsn import MASK, DsnError, libpq_env, normalize_dsn, redact, redact_dsn
from turnout.hostside import envfile
from turnout.hostside.base import HostsideError, remember_secret, write_json_atomically

SECRET_KEY_RE = re.compile(r"password|passwd|secret|token|credential|private|api_?key", re.I)
_REFERENCE_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
_UNQUOTED_SAFE_RE = re.compile(r"[A-Za-z0-9_./:@%+,=*${}-]+")
_CHECK_KEY = "TURNOUT_ENVEDIT_CHECK_"
# An assignment ``turnout.dsn.redact`` masks (its key pattern), holding a bare mask.
_BARE_MASK_RE = re.compile(
    r"((?<![A-Za-z0-9_])[A-Za-z0-9_]*(?:password|passwd|secret|token)[A-Za-z0-9_]*\s*=\s*)"
    r"\*\*\*(?![*'])",
    re.I,
)


class Statement:
    """One ``KEY=value`` statement of the file: where its value's text starts and ends (the rest
    of its line, an inline comment, is not part of it), its quote and whether it had no ``=``."""

    def __init__(
        self, key: str, start: int, value_start: int, value_end: int, quote: str, bare: bool
    ) -> None:
        self.key = key
        self.start = start
        self.value_start = value_start
        self.value_end = value_end
        self.quote = quote
        self.bare = bare

    def line_span(self, text: str) -> tuple[int, int]:
        """The whole lines the statement is on (with the last line's ending)."""
        begin = text.rfind("\n", 0, self.start) + 1
        end = text.find("\n", max(self.value_end, self.start))
        return begin, len(text) if end < 0 else end + 1


# Reading ----------------------------------------------------------------------------------------


def statements(text: str) -> list[Statement]:
    """The statements of ``text`` in order, located with compose's own parser
    (``EnvFileError`` where compose would fail)."""
    parser = envfile._Parser(text, os.environ.get)
    found: list[Statement] = []
    pos = parser.statement_start(0)
    while pos is not None:
        key, value_pos, bare = parser.key(pos)
        end = parser.statement(pos)
        if bare:
            newline = text.find("\n", pos)
            newline = len(text) if newline < 0 else newline
            key_end = pos + len(text[pos:newline].rstrip())
            found.append(Statement(key, pos, key_end, key_end, "", True))
        elif value_pos < len(text) and text[value_pos] in "'\"":
            found.append(Statement(key, pos, value_pos, end, text[value_pos], False))
        else:
            raw = text[value_pos:end].split(" #", 1)[0]
            value_end = value_pos + len(envfile._go_rstrip(raw))
            found.append(Statement(key, pos, value_pos, value_end, "", False))
        pos = parser.statement_start(end)
    return found


def parse(text: str, path: str) -> dict[str, str]:
    """The variables of ``text`` as compose reads them; ``HostsideError`` naming the line."""
    try:
        return envfile.parse_env(text)
    except envfile.EnvFileError as error:
        raise HostsideError(f"env file {path}: {error}") from None


def references(template: str) -> list[str]:
    """The variables a compose template refers to (``$$`` is not a reference).

    >>> references("${PG_URL}/x$$y$Z")
    ['PG_URL', 'Z']
    """
    names = []
    for match in _REFERENCE_RE.finditer(template.replace("$$", "")):
        names.append(match.group(1) or match.group(2))
    return names


# Writing ----------------------------------------------------------------------------------------


def encode(template: str, quote: str = '"') -> str:
    """``template`` as the value text of a ``.env`` line that compose reads back as the template
    expands: in ``quote``'s style when that is exact, else double-quoted.

    >>> encode("single", ""), encode("${PG}", "'"), encode('a "b"', "")
    ('single', '"${PG}"', '"a \\\\"b\\\\""')
    """
    if quote == "" and (template == "" or _UNQUOTED_SAFE_RE.fullmatch(template)):
        return template
    if quote == "'" and "$" not in template and not re.search(r"['\\\n\r]", template):
        return f"'{template}'"
    escaped = template.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def line_ending(text: str) -> str:
    """The file's line ending: ``\\r\\n`` when its first line ends so, else ``\\n``."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def apply_values(text: str, values: dict[str, str], moved: set[str]) -> str:
    """``text`` with each key of ``values`` rewritten in place (every definition of it), the
    keys of ``moved`` taken out of their place and appended, missing non-empty keys appended."""
    found = statements(text)
    edits: list[tuple[int, int, str]] = []
    present: set[str] = set()
    for each in found:
        if each.key not in values:
            continue
        present.add(each.key)
        if each.key in moved:
            begin, end = each.line_span(text)
            edits.append((begin, end, ""))
        elif each.bare:
            edits.append((each.value_start, each.value_end, "=" + encode(values[each.key], "")))
        else:
            value = encode(values[each.key], each.quote)
            edits.append((each.value_start, each.value_end, value))
    for begin, end, replacement in sorted(edits, reverse=True):
        text = text[:begin] + replacement + text[end:]
    newline = line_ending(text)
    for key, template in values.items():
        if key in moved or (key not in present and template != ""):
            if text and not text.endswith("\n"):
                text += newline
            text += f"{key}={encode(template)}{newline}"
    return text


def expanded(text: str, values: dict[str, str], path: str) -> dict[str, str]:
    """What each template of ``values`` expands to at the end of ``text`` (as compose would
    expand it on a line appended there)."""
    newline = line_ending(text)
    probe = text if not text or text.endswith("\n") else text + newline
    names = {}
    for index, (key, template) in enumerate(sorted(values.items())):
        names[key] = f"{_CHECK_KEY}{index}"
        probe += f"{names[key]}={encode(template)}{newline}"
    parsed = parse(probe, path)
    return {key: parsed.get(name, "") for key, name in names.items()}


def rewrite_text(
    text: str, values: dict[str, str], path: str = ".env"
) -> tuple[str, list[str], list[str]]:
    """The new content, the keys whose line changes and notes for the plan (moves, repeated
    keys). ``HostsideError`` when the result would not read back as intended."""
    check_values(values)
    before = parse(text, path)
    missing = sorted({n for t in values.values() for n in references(t)} - set(before))
    if missing:
        users = sorted(k for k, t in values.items() if set(references(t)) & set(missing))
        raise HostsideError(
            f"{path} does not define {', '.join(missing)}, which {', '.join(users)} would refer "
            f"to: add {missing[0]}=\"…\" (the PostgreSQL DSN) to it and run again; nothing was "
            f"changed"
        )
    for name in {n for t in values.values() for n in references(t)}:
        if name in values:
            raise HostsideError(f"{name} cannot be both rewritten and referred to")
        if not before.get(name):
            raise HostsideError(
                f"{name} is empty in {path}: set it to the PostgreSQL DSN and run again; nothing "
                f"was changed"
            )
    want = expanded(text, values, path)
    moved: set[str] = set()
    new = apply_values(text, values, moved)
    after = parse(new, path)
    for key in values:
        if after.get(key, "") != want[key]:
            moved.add(key)
    if moved:
        new = apply_values(text, values, moved)
        after = parse(new, path)
    for key in values:
        if after.get(key, "") != want[key]:
            raise HostsideError(f"{key} would not read back as intended in {path}; nothing was "
                                f"changed")
    for key, value in before.items():
        if key not in values and after.get(key) != value:
            raise HostsideError(
                f"{key} in {path} refers to {', '.join(sorted(values))} and would change: "
                f"rewrite it by hand; nothing was changed"
            )
    counts: dict[str, int] = {}
    for each in statements(text):
        counts[each.key] = counts.get(each.key, 0) + 1
    notes = [
        f"{key} is defined {counts[key]} times; every definition is rewritten"
        for key in sorted(values)
        if counts.get(key, 0) > 1
    ]
    notes += [
        f"{key} is moved to the end of the file (it refers to "
        f"{', '.join(references(values[key]))}, defined below it)"
        for key in sorted(moved)
    ]
    changed = changed_keys(text, new, values)
    return new, changed, notes


def check_values(values: object) -> None:
    """``values`` must map variable names to one-line strings."""
    if not isinstance(values, dict) or not values:
        raise HostsideError("values must be a non-empty object of .env keys and values")
    for key, value in values.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
            raise HostsideError(f"{key!r} is not a .env key turnout rewrites")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise HostsideError(f"the value of {key} must be one line of text")


def changed_keys(old: str, new: str, values: dict[str, str]) -> list[str]:
    """The keys of ``values`` whose definitions differ between ``old`` and ``new``."""

    def texts(content: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for each in statements(content):
            if each.key in values:
                begin, end = each.line_span(content)
                found.setdefault(each.key, []).append(content[begin:end])
        return found

    before, after = texts(old), texts(new)
    return [key for key in values if before.get(key) != after.get(key)]


# Redaction --------------------------------------------------------------------------------------


def value_secrets(key: str, value: str) -> list[str]:
    """The secrets in one variable: its whole value when the key looks secret, else the password
    of a DSN or URL in it (as written and as compose reads it)."""
    if not value:
        return []
    if SECRET_KEY_RE.search(key):
        return [value]
    found: list[str] = []
    if redact_dsn(value) != value:
        try:
            found.append(libpq_env(normalize_dsn(value))[1].get("PGPASSWORD", ""))
        except (DsnError, ImportError):
            pass
        match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:(.*)@", value, re.S)
        if match:
            found.append(match.group(1))
    return [secret for secret in found if secret]


def secrets_of(variables: dict[str, str]) -> list[str]:
    """Every secret of a file's variables, with the forms a ``.env`` line may hold it in; each
    is also remembered so the program's whole answer is redacted against it."""
    found: list[str] = []
    for key, value in variables.items():
        for secret in value_secrets(key, value):
            for form in (secret, secret.replace("\\", "\\\\").replace('"', '\\"')):
                if form not in found:
                    found.append(form)
                remember_secret(form)
    return found


def shown_value(key: str, value: str) -> str:
    """A variable's value as the plan shows it.

    >>> shown_value("DB_PASSWORD", "x"), shown_value("U", "postgresql://a:pw@h/d")
    ('***', 'postgresql://a:***@h/d')
    """
    if SECRET_KEY_RE.search(key) and value:
        return MASK
    return redact_dsn(value) if value else value


def shown_text(text: str, secrets: list[str], path: str) -> list[str]:
    """The lines of ``text`` safe to show: a secret key's value is ``***``, a value holding a
    password shows the redacted DSN, and the literal secrets are masked on every line."""
    edits = []
    for each in statements(text):
        if each.bare:
            continue
        raw = text[each.value_start : each.value_end]
        try:
            value = envfile.parse_env(f"X={raw}\n", lambda name: None).get("X", "")
        except envfile.EnvFileError:
            value = raw
        if SECRET_KEY_RE.search(each.key) and raw:
            edits.append((each.value_start, each.value_end, MASK))
        elif value_secrets(each.key, value):
            edits.append((each.value_start, each.value_end, encode(redact_dsn(value), each.quote)))
    for begin, end, replacement in sorted(edits, reverse=True):
        text = text[:begin] + replacement + text[end:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [_quoted_masks(redact(line.rstrip("\r"), secrets)) for line in lines]


def _quoted_masks(line: str) -> str:
    """``KEY_PASSWORD=***`` as ``KEY_PASSWORD='***'``: the program's answer is redacted once
    more as a whole (``turnout.dsn.redact``), which would take a bare mask and the rest of the
    JSON text up to the next blank for the value; a quoted one is taken exactly.

    >>> _quoted_masks("DB_PASSWORD=*** x")
    "DB_PASSWORD='***' x"
    """
    return _BARE_MASK_RE.sub(r"\1'***'", line)


def redacted_diff(old: str, new: str, path: str, secrets: list[str]) -> str:
    """A unified diff of the two contents, redacted (``shown_text``)."""
    lines = difflib.unified_diff(
        shown_text(old, secrets, path),
        shown_text(new, secrets, path),
        fromfile=f"{path} (now)",
        tofile=f"{path} (after)",
        lineterm="",
    )
    return "\n".join(lines) + "\n" if old != new else ""


# The file ---------------------------------------------------------------------------------------


def read_text(path: str) -> tuple[str, os.stat_result]:
    """The file's text (bytes kept as they are) and its stat."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            text = handle.read()
            info = os.fstat(handle.fileno())
    except FileNotFoundError:
        raise HostsideError(f"env file {path} does not exist on this host") from None
    except PermissionError:
        raise HostsideError(f"env file {path} is not readable by this user") from None
    if not stat.S_ISREG(info.st_mode):
        raise HostsideError(f"env file {path} is not a regular file")
    return text, info


def file_identity(info: os.stat_result) -> dict:
    """Mode, owner and group of the file, by number and name."""

    def name(lookup, number: int) -> str:  # noqa: ANN001
        try:
            return lookup(number)[0]
        except KeyError:
            return str(number)

    return {
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "uid": info.st_uid,
        "gid": info.st_gid,
        "owner": name(pwd.getpwuid, info.st_uid),
        "group": name(grp.getgrgid, info.st_gid),
    }


def plan(path: str, values: dict[str, str]) -> dict:
    """What rewriting ``values`` in ``path`` changes, redacted: the answer of both actions."""
    text, info = read_text(path)
    variables = parse(text, path)
    secrets = secrets_of(variables)
    new, changed, notes = rewrite_text(text, values, path)
    after = parse(new, path)
    return {
        "env_file": path,
        "changed_keys": changed,
        "current": {k: shown_value(k, variables[k]) if k in variables else None for k in values},
        "wanted": {k: redact(v, secrets) for k, v in values.items()},
        "after": {k: shown_value(k, after.get(k, "")) for k in values},
        "notes": notes,
        "diff": redacted_diff(text, new, path, secrets),
        **file_identity(info),
        "_new": new,
        "_old": text,
    }


def write_atomically(path: str, text: str, info: os.stat_result) -> None:
    """Replace ``path`` by ``text``: a temporary file beside it with the original's mode and
    owner, fsync, rename, directory fsync."""
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.turnout-")
    except OSError as error:
        raise HostsideError(f"cannot write beside {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), stat.S_IMODE(info.st_mode))
            if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(out.fileno(), info.st_uid, info.st_gid)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise HostsideError(
            f"cannot rewrite {path} with its mode and owner: {error.strerror}; it is unchanged"
        ) from None
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def keep_backup(path: str, text: str) -> str:
    """Copy the old content to ``path`` (0600, fsynced); an existing file there is never
    overwritten (``path.1``, ``path.2``… unless it already holds the same content)."""
    data = text.encode("utf-8", "surrogateescape")
    for index in range(100):
        candidate = path if index == 0 else f"{path}.{index}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            with open(candidate, "rb") as handle:
                if handle.read() == data:
                    return candidate
            continue
        except OSError as error:
            raise HostsideError(f"cannot keep the backup {path}: {error.strerror}") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return candidate
    raise HostsideError(f"cannot keep the backup {path}: 100 backups of that name exist")


# Actions ----------------------------------------------------------------------------------------


def public(answer: dict) -> dict:
    """The answer without the file contents."""
    return {k: v for k, v in answer.items() if not k.startswith("_")}


def action_env_phase_plan(params: dict) -> dict:
    """Fact: what rewriting ``values`` in ``env_file`` would change (see ``plan``)."""
    return public(plan(params["env_file"], params["values"]))


def action_env_rewrite(params: dict) -> dict:
    """Operation: rewrite ``values`` in ``env_file`` (backup first, atomic, mode and owner
    kept); with ``record``, a redacted JSON record of the change. Answers the changed keys."""
    path = params["env_file"]
    answer = plan(path, params["values"])
    if not answer["changed_keys"]:
        return {**public(answer), "backup": None}
    _, info = read_text(path)
    backup = keep_backup(params["backup_path"], answer["_old"])
    write_atomically(os.path.realpath(path), answer["_new"], info)  # a symlink stays one
    reread, _ = read_text(path)
    if reread != answer["_new"]:
        raise HostsideError(f"{path} changed while it was rewritten; the old one is in {backup}")
    result = {
        **public(answer),
        "backup": backup,
        "backup_sha256": hashlib.sha256(answer["_old"].encode("utf-8", "surrogateescape"))
        .hexdigest(),
    }
    if params.get("record"):
        write_json_atomically(params["record"], result)
    return result
