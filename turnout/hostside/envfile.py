"""Read a server-side ``.env`` file exactly as Docker Compose v2 reads it (``--env-file``).

turnout reads a DSN on the host from the same ``.env`` file compose gives the app, so it must get
the same value compose does. The rules below are those of compose-go's ``dotenv`` parser and its
``template`` interpolation (compose-go v2.9, Docker Compose v2.40), checked against ``docker
compose config`` by ``tests/integration/test_envfile_compose.py``:

- Blank lines and lines whose first non-blank character is ``#`` are skipped; a UTF-8 BOM is
  ignored. A statement may start with ``export`` followed by whitespace.
- ``KEY=value`` or ``KEY: value``; blanks around the key and after ``=`` are dropped. A key is made
  of letters, digits, ``_ . - [ ]``; a space inside it is an error.
- A key alone on its line (``KEY``) takes its value from the process environment, and is left out
  when it is not set there. (A last line ``KEY`` without a newline is, as in compose, the value of
  the empty key ``""``.)
- Unquoted values end at the end of the line or at the first ``" #"`` (a space then ``#``; a tab
  does not start a comment, and ``a#b`` keeps its ``#``); trailing blanks are dropped; variables
  are expanded.
- ``'single quoted'`` values are literal: no escapes (``\\'`` is a quote), no expansion, may span
  lines.
- ``"double quoted"`` values may span lines; ``\\"`` ``\\\\`` ``\\n`` ``\\r`` ``\\t`` ``\\a``
  ``\\b`` ``\\f`` ``\\v`` ``\\$`` and octal ``\\0NNN`` are escapes, any other backslash stays; then
  variables are expanded. Text after the closing quote on the same line is read as the next
  statement (so ``" # comment"`` is a comment).
- Expansion: ``$$`` is ``$``; ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
  ``${VAR:+alt}``, ``${VAR+alt}``, ``${VAR:?msg}``, ``${VAR?msg}`` (error when unset, or empty for
  ``:?``); defaults nest. An unset variable is empty. ``${`` without a valid name and closing
  brace is an error. A ``$`` before anything else stays as it is.
- Expansion looks a name up in the process environment first and only then among the keys defined
  earlier in the file: with ``P=proc`` in the environment, ``P=file`` then ``Q=${P}`` gives
  ``Q=proc``. The value returned for a key is still the file's own (``P=file``); compose lets the
  process environment override it afterwards, which is the caller's business (``host_dsn``).
- A repeated key: the last one wins.

Where compose fails, ``EnvFileError`` is raised; its message names the line and the problem, never
the value (values may be passwords).

Stdlib only, no ``from __future__``: this module is shipped to the hosts.

    >>> from turnout.hostside.envfile import parse_env
    >>> parse_env('export HOST=db  # primary\\nDATABASE_URL="postgresql://app@${HOST}/app"\\n',
    ...           lookup={}.get)
    {'HOST': 'db', 'DATABASE_URL': 'postgresql://app@db/app'}
"""

import collections.abc
import os
import re
import unicodedata

Lookup = collections.abc.Callable[[str], str | None]

# Blanks inside a statement (Go's dotenv ``isSpace``): not the line break.
_INLINE_SPACE = frozenset("\t\v\f\r \x85\xa0")
# ``export`` followed by Go regexp ``\s`` (which is ``[\t\n\f\r ]``).
_EXPORT = re.compile(r"export[\t\n\f\r ]+")
_KEY_PUNCTUATION = frozenset("_.-[]")
# Double-quoted escapes (Go rune literals; ``\$`` becomes ``$$``, a literal ``$`` for expansion).
_ESCAPES = {
    **{"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"},
    **{'"': '"', "\\": "\\", "$": "$$"},
}
# Go's case-insensitive ``[a-z]`` also matches KELVIN SIGN and LATIN SMALL LETTER LONG S.
_NAME_START = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\u212a\u017f")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_OPERATORS = ("-", "+", "?")


class EnvFileError(ValueError):
    """The file is not valid for compose. The message names the line and the problem (and the
    file, from ``read_env_file``), never a value."""

    def __init__(self, line: int, problem: str, path: str | None = None) -> None:
        self.line = line
        self.problem = problem
        self.path = path
        where = f"{path}: line {line}" if path else f"line {line}"
        super().__init__(f"{where}: {problem}")


class _TemplateError(Exception):
    """A problem in ``$`` expansion; becomes an ``EnvFileError`` once the line is known."""


def read_env_file(path: str, lookup: Lookup = os.environ.get) -> dict[str, str]:
    """The variables of the ``.env`` file at ``path``, as compose reads them (see the module doc).
    ``FileNotFoundError`` and ``PermissionError`` propagate."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        text = handle.read()
    try:
        return parse_env(text, lookup)
    except EnvFileError as error:
        raise EnvFileError(error.line, error.problem, path) from None


def parse_env(text: str, lookup: Lookup = os.environ.get) -> dict[str, str]:
    """The variables defined by ``text`` (the content of a ``.env`` file). ``lookup`` gives the
    process environment: it resolves keys without a value and comes first in expansion."""
    return _Parser(text.removeprefix("\ufeff"), lookup).parse()


class _Parser:
    """One pass over the text, statement by statement, as compose-go's dotenv parser goes."""

    def __init__(self, text: str, lookup: Lookup) -> None:
        self.text = text
        self.lookup = lookup
        self.values: dict[str, str] = {}

    def parse(self) -> dict[str, str]:
        pos = self.statement_start(0)
        while pos is not None:
            pos = self.statement_start(self.statement(pos))
        return self.values

    def line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def statement_start(self, pos: int) -> int | None:
        """Where the next statement starts, past blanks and comment lines; None at the end."""
        text = self.text
        while pos < len(text):
            if _is_go_space(text[pos]):
                pos += 1
            elif text[pos] == "#":
                newline = text.find("\n", pos)
                if newline < 0:
                    return None
                pos = newline
            else:
                return pos
        return None

    def statement(self, start: int) -> int:
        """Read one ``KEY=value`` (or ``KEY``) statement at ``start``; returns where it ended."""
        key, pos, inherited = self.key(start)
        if " " in key:
            raise EnvFileError(self.line_of(start), "a key cannot contain a space")
        if inherited:
            value = self.lookup(key)
            if value is not None:
                self.values[key] = value
            return pos
        value, pos = self.value(pos, start)
        self.values[key] = value
        return pos

    def key(self, start: int) -> tuple[str, int, bool]:
        """The key at ``start``, where its value starts, and whether it has none (a line break
        ended it). A key without ``=``, ``:`` or line break after it is the empty key (compose)."""
        text = self.text
        if _EXPORT.match(text, start):
            start = _skip_inline_space(text, start + len("export"))
        for pos in range(start, len(text)):
            char = text[pos]
            if char in "=:\n":
                key = _go_rstrip(text[start:pos])
                return key, _skip_inline_space(text, pos + 1), char == "\n"
            if not (char in _INLINE_SPACE or _is_key_char(char)):
                column = pos - (text.rfind("\n", 0, pos) + 1) + 1
                raise EnvFileError(
                    self.line_of(pos), f"unexpected character in a variable name (column {column})"
                )
        return "", start, False

    def value(self, pos: int, start: int) -> tuple[str, int]:
        """The value at ``pos`` (statement at ``start``) and where it ended."""
        text = self.text
        quote = text[pos] if pos < len(text) and text[pos] in "'\"" else ""
        if not quote:
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            raw = _go_rstrip(text[pos:end].split(" #", 1)[0])
            return self.expand(raw, start), end
        raw, end = _quoted(text, pos)
        if end < 0:
            raise EnvFileError(self.line_of(pos), "unterminated quoted value")
        if quote == '"':
            raw = self.expand(_unescape(raw), start)
        return raw, end

    def expand(self, raw: str, start: int) -> str:
        try:
            return _substitute(raw, self.resolve)
        except _TemplateError as error:
            raise EnvFileError(self.line_of(start), str(error)) from None

    def resolve(self, name: str) -> str | None:
        """A variable for expansion: the process environment first, then this file (compose)."""
        value = self.lookup(name)
        return self.values.get(name) if value is None else value


# Characters ------------------------------------------------------------------------------------


def _is_go_space(char: str) -> bool:
    """Go's ``unicode.IsSpace`` (Python's ``isspace`` also counts the separators 0x1C-0x1F)."""
    return char.isspace() and char not in "\x1c\x1d\x1e\x1f"


def _go_rstrip(text: str) -> str:
    end = len(text)
    while end and _is_go_space(text[end - 1]):
        end -= 1
    return text[:end]


def _skip_inline_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _INLINE_SPACE:
        pos += 1
    return pos


def _is_key_char(char: str) -> bool:
    """Go's ``unicode.IsLetter`` or ``unicode.IsNumber``, or ``_ . - [ ]``."""
    return char in _KEY_PUNCTUATION or unicodedata.category(char)[0] in "LN"


# Quotes and escapes ----------------------------------------------------------------------------


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The content of the quoted string opening at ``pos`` and the position after its closing
    quote (-1 when it has none). A backslash before the quote character is dropped and the quote
    kept; any other backslash pair is kept as it is (for ``_unescape``)."""
    quote = text[pos]
    chars: list[str] = []
    escaped = False
    for index in range(pos + 1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
            chars.append(char if char == quote else "\\" + char)
        elif char == "\\":
            escaped = True
        elif char == quote:
            return "".join(chars), index + 1
        else:
            chars.append(char)
    return "", -1


def _unescape(raw: str) -> str:
    """Escapes of a double-quoted value (``_ESCAPES``); any other backslash stays. ``\\0`` and up
    to three digits is octal with the ``0`` dropped; when the rest is not exactly three octal
    digits worth at most 255 it stays as text, without the ``0`` (compose)."""
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        follower = raw[pos + 1 : pos + 2]
        if raw[pos] != "\\" or not follower:
            out.append(raw[pos])
            pos += 1
        elif follower == "0":
            digits = _ascii_digits(raw, pos + 2, 3)
            out.append(_octal(digits))
            pos += 2 + len(digits)
        elif follower in _ESCAPES:
            out.append(_ESCAPES[follower])
            pos += 2
        else:
            out.append("\\")
            pos += 1
    return "".join(out)


def _ascii_digits(text: str, pos: int, limit: int) -> str:
    end = pos
    while end < len(text) and end - pos < limit and text[end] in "0123456789":
        end += 1
    return text[pos:end]


def _octal(digits: str) -> str:
    if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) <= 255:
        return chr(int(digits, 8))
    return "\\" + digits


# Expansion -------------------------------------------------------------------------------------


def _substitute(template: str, resolve: Lookup) -> str:
    """``template`` with ``$$``, ``$NAME`` and ``${…}`` expanded (compose-go ``template``)."""
    out: list[str] = []
    pos = 0
    while True:
        dollar = template.find("$", pos)
        if dollar < 0:
            out.append(template[pos:])
            return "".join(out)
        out.append(template[pos:dollar])
        follower = template[dollar + 1 : dollar + 2]
        if follower == "$":
            out.append("$")
            pos = dollar + 2
        elif follower and follower in _NAME_START:
            end = _name_end(template, dollar + 1)
            out.append(resolve(template[dollar + 1 : end]) or "")
            pos = end
        elif follower == "{":
            value, pos = _braced(template, dollar, resolve)
            out.append(value)
        else:
            out.append("$")
            pos = dollar + 1


def _name_end(template: str, pos: int) -> int:
    while pos < len(template) and template[pos] in _NAME_CHARS:
        pos += 1
    return pos


def _braced(template: str, dollar: int, resolve: Lookup) -> tuple[str, int]:
    """The value of the ``${…}`` at ``dollar`` and the position after it.

    As in compose, the reference with an operator reaches the last ``}`` of its line; braces are
    then counted from ``${`` to find where it closes, and what follows is expanded on its own."""
    start = dollar + 2
    if template[start : start + 1] not in _NAME_START:
        raise _TemplateError("invalid variable reference: ${ without a valid name")
    name_end = _name_end(template, start)
    name = template[start:name_end]
    if template[name_end : name_end + 1] == "}":
        return resolve(name) or "", name_end + 1
    operator = _operator(template, name_end)
    if not operator:
        raise _TemplateError(f"invalid variable reference to {name}")
    line_end = template.find("\n", name_end)
    line_end = len(template) if line_end < 0 else line_end
    last = template.rfind("}", name_end + len(operator), line_end)
    if last < 0:
        raise _TemplateError(f"invalid variable reference to {name}: no closing brace")
    reference = template[dollar : last + 1]
    close = _closing_brace(reference)
    head, rest = (reference, "") if close < 0 else (reference[: close + 1], reference[close + 1 :])
    argument = _substitute(head[name_end - dollar + len(operator) : -1], resolve)
    value = _apply(operator, name, resolve(name), argument)
    return value + _substitute(rest, resolve), last + 1


def _operator(template: str, pos: int) -> str:
    if template[pos : pos + 1] == ":" and template[pos + 1 : pos + 2] in _OPERATORS:
        return template[pos : pos + 2]
    if template[pos : pos + 1] in _OPERATORS:
        return template[pos]
    return ""


def _closing_brace(reference: str) -> int:
    """compose-go's ``getFirstBraceClosingIndex``: every ``{`` opens (and hides the character
    after it), every ``}`` closes; the index where the count returns to zero, or -1."""
    depth = 0
    pos = 0
    while pos < len(reference):
        if reference[pos] == "}":
            depth -= 1
            if depth == 0:
                return pos
        if reference[pos] == "{":
            depth += 1
            pos += 1
        pos += 1
    return -1


def _apply(operator: str, name: str, value: str | None, argument: str) -> str:
    """``${name<operator>argument}`` given the variable's value (None when unset)."""
    empty = not value
    if operator in (":-", "-"):
        use_default = value is None or (operator == ":-" and empty)
        return argument if use_default else value or ""
    if operator in (":+", "+"):
        use_alternative = value is not None and (operator == "+" or not empty)
        return argument if use_alternative else value or ""
    if value is None or (operator == ":?" and empty):
        raise _TemplateError(f"required variable {name} is missing a value")
    return value
