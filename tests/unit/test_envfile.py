"""turnout.hostside.envfile: compose's ``.env`` rules, one table row per rule.

Every expectation here was checked against ``docker compose config`` (Compose v2.40.3);
``tests/integration/test_envfile_compose.py`` keeps checking the main ones against real compose.
"""

import os

import pytest

from turnout.hostside.envfile import EnvFileError, parse_env, read_env_file

# The process environment the table runs with.
ENV = {"HOME": "/home/app", "P": "proc", "EMPTY": "", "INHERITED": "from-env"}

PASSWORD = "s3cr3t-Pa55"

# (id, .env text, expected variables)
CASES = [
    # Blank lines, comments, BOM, line endings.
    ("blank-and-comment-lines", "\n  \n# A=1\n   # B=2\nA=1\n\n", {"A": "1"}),
    ("comment-at-end-without-newline", "A=1\n# end", {"A": "1"}),
    ("utf8-bom", "\ufeffA=1\n", {"A": "1"}),
    ("crlf", "A=1\r\nB='2'\r\nC=\"3\"\r\n", {"A": "1", "B": "2", "C": "3"}),
    ("no-final-newline", "A=1", {"A": "1"}),
    # export, whitespace, key syntax.
    ("export", "export A=1\nexport \t B=2\n", {"A": "1", "B": "2"}),
    ("export-alone-on-a-line", "export\nA=1\n", {"A": "1"}),
    (
        "export-is-a-key-prefix-only-before-blank",
        "exportA=1\nexport=2\n",
        {"exportA": "1", "export": "2"},
    ),
    ("blanks-around-key-and-equals", "  A  =  1\nB\t=\tx\n", {"A": "1", "B": "x"}),
    ("yaml-style-colon", "A: 1\nB : 2\nC:b=c\n", {"A": "1", "B": "2", "C": "b=c"}),
    ("value-may-hold-equals-and-colons", "A==b\nB=b:c\n", {"A": "=b", "B": "b:c"}),
    (
        "key-characters",
        "a.b=1\nk-1=2\nA[0]=3\n_x=4\n1KEY=5\nCAFÉ=6\n",
        {"a.b": "1", "k-1": "2", "A[0]": "3", "_x": "4", "1KEY": "5", "CAFÉ": "6"},
    ),
    ("empty-key", "=value\n", {"": "value"}),
    ("tab-inside-key-is-kept", "A\tB=1\n", {"A\tB": "1"}),
    ("nbsp-before-equals-is-blank", "A\u00a0=1\n", {"A": "1"}),
    # Unquoted values.
    ("unquoted-trailing-blanks-trimmed", "A=  spaced  value \t \n", {"A": "spaced  value"}),
    ("empty-value", "A=\nB=\n", {"A": "", "B": ""}),
    ("inline-comment", "A=1 # comment\nB=x  #c\n", {"A": "1", "B": "x"}),
    ("hash-without-space-is-kept", "A=a#b\nB=x#\n", {"A": "a#b", "B": "x#"}),
    ("hash-after-tab-is-kept", "A=x\t#y\n", {"A": "x\t#y"}),
    ("value-starting-with-hash", "A=#x\nB= #x\n", {"A": "#x", "B": "#x"}),
    ("unquoted-quotes-are-text", 'A=x"y"\nB=it\'s\n', {"A": 'x"y"', "B": "it's"}),
    ("unquoted-backslashes-are-text", "A=a\\nb\\\n", {"A": "a\\nb\\"}),
    ("unquoted-expands", "A=$HOME/x\nB=${P}y\n", {"A": "/home/app/x", "B": "procy"}),
    # Single quotes: literal.
    ("single-literal", "A='$HOME ${P} \\n #x'\n", {"A": "$HOME ${P} \\n #x"}),
    ("single-dollars-stay", "A='$$'\n", {"A": "$$"}),
    ("single-escaped-quote", "A='it\\'s'\n", {"A": "it's"}),
    ("single-backslash-pair-stays", "A='a\\\\b'\n", {"A": "a\\\\b"}),
    ("single-multiline", "A='l1\nl2'\nB=2\n", {"A": "l1\nl2", "B": "2"}),
    ("single-then-comment", "A='x' # c\n", {"A": "x"}),
    # Double quotes: escapes, then expansion.
    ("double-plain", 'A="a #b"\n', {"A": "a #b"}),
    ("double-escapes", 'A="\\n\\r\\t\\a\\b\\f\\v"\n', {"A": "\n\r\t\a\b\f\v"}),
    ("double-escaped-quote-and-backslash", 'A="say \\"hi\\" \\\\ end"\n', {"A": 'say "hi" \\ end'}),
    ("double-backslash-before-closing-quote", 'A="a\\\\"\nB=1\n', {"A": "a\\", "B": "1"}),
    ("double-unknown-escapes-stay", 'A="\\q\\x41\\u0041\\\'\\c"\n', {"A": "\\q\\x41\\u0041\\'\\c"}),
    ("double-escaped-dollar-is-literal", 'A="\\$HOME"\n', {"A": "$HOME"}),
    ("double-octal", 'A="\\0101\\0377"\n', {"A": "A\u00ff"}),
    (
        "double-octal-invalid-drops-the-zero",
        'A="\\012|\\0|\\0777|\\09"\n',
        {"A": "\\12|\\|\\777|\\9"},
    ),
    (
        "double-escape-then-expand",
        'A="\\\\$HOME"\nB="\\0044HOME"\n',
        {"A": "\\/home/app", "B": "/home/app"},
    ),
    ("double-multiline-expands", 'A="l1 $P\nl2"\n', {"A": "l1 proc\nl2"}),
    ("double-then-comment", 'A="x"# c\nB="y" # c\n', {"A": "x", "B": "y"}),
    ("text-after-quote-is-next-statement", 'A="x" B=2\n', {"A": "x", "B": "2"}),
    (
        "word-after-quote-is-an-inherited-key",
        'A="x"INHERITED\n',
        {"A": "x", "INHERITED": "from-env"},
    ),
    # Expansion.
    ("dollar-dollar", "A=$$HOME\nB=a$$$P\n", {"A": "$HOME", "B": "a$proc"}),
    (
        "lone-dollars-stay",
        "A=$\nB=a$ b\nC=$1\nD=$-x\n",
        {"A": "$", "B": "a$ b", "C": "$1", "D": "$-x"},
    ),
    ("names-are-case-sensitive", "A=$p${home}\n", {"A": ""}),
    ("named-reference-is-greedy", "A=$Px\nB=${P}x\n", {"A": "", "B": "procx"}),
    ("unset-is-empty", "A=x${NOPE}y$NOPE\n", {"A": "xy"}),
    (
        "default-when-unset-or-empty",
        "A=${NOPE:-d}\nB=${EMPTY:-d}\nC=${P:-d}\n",
        {"A": "d", "B": "d", "C": "proc"},
    ),
    (
        "default-when-unset",
        "A=${NOPE-d}\nB=${EMPTY-d}\nC=${P-d}\n",
        {"A": "d", "B": "", "C": "proc"},
    ),
    (
        "alternative-when-non-empty",
        "A=${NOPE:+alt}\nB=${EMPTY:+alt}\nC=${P:+alt}\n",
        {"A": "", "B": "", "C": "alt"},
    ),
    (
        "alternative-when-set",
        "A=${NOPE+alt}\nB=${EMPTY+alt}\nC=${P+alt}\n",
        {"A": "", "B": "alt", "C": "alt"},
    ),
    ("required-and-set", "A=${P:?m}\nB=${EMPTY?m}\n", {"A": "proc", "B": ""}),
    ("nested-defaults", "A=${NOPE:-${NOPE2:-${P}}}\n", {"A": "proc"}),
    ("default-with-dollars", "A=${NOPE:-$$}\nB=${NOPE:-a b}\n", {"A": "$", "B": "a b"}),
    ("reference-then-text", "A=${NOPE:-a}b}c}\n", {"A": "ab}c}"}),
    (
        "braces-in-default-counted-like-compose",
        "A=${NOPE:-{x}\nB=${NOPE:-{}}x}\n",
        {"A": "{x", "B": "{}}x"},
    ),
    ("references-in-a-row", "A=${NOPE-x}${NOPE2:+y}$$$HOME\n", {"A": "x$/home/app"}),
    ("earlier-key-of-the-file", 'X=1\nA=${X}2\nB="$X"\n', {"X": "1", "A": "12", "B": "1"}),
    ("environment-before-earlier-key", "P=file\nA=${P}\n", {"P": "file", "A": "proc"}),
    ("later-key-is-not-seen", "A=${Y}\nY=1\n", {"A": "", "Y": "1"}),
    ("expanded-values-are-not-expanded-again", "X=$$HOME\nA=${X}\n", {"X": "$HOME", "A": "$HOME"}),
    ("kelvin-sign-is-a-name-letter", "A=$\u212a\nB=$\u0131\n", {"A": "", "B": "$\u0131"}),
    # Keys without a value, duplicates.
    ("key-alone-from-environment", "INHERITED\nA=1\n", {"INHERITED": "from-env", "A": "1"}),
    ("key-alone-not-in-environment-is-left-out", "NOPE\nA=1\n", {"A": "1"}),
    ("key-alone-keeps-earlier-value-when-unset", "NOPE=1\nNOPE\n", {"NOPE": "1"}),
    ("key-alone-without-newline-is-the-empty-key", "A=1\nINHERITED", {"A": "1", "": "INHERITED"}),
    ("duplicate-last-wins", "A=1\nB=2\nA=3\n", {"A": "3", "B": "2"}),
]

# (id, .env text, line named in the error, words of the problem)
ERRORS = [
    ("space-in-key", f"A=1\n\nMY KEY={PASSWORD}\n", 3, "cannot contain a space"),
    ("space-in-key-alone", "MY KEY\n", 1, "cannot contain a space"),
    ("bad-key-character", f"A=1\nK$Y={PASSWORD}\n", 2, "unexpected character"),
    ("text-after-quote", f'A="{PASSWORD}"  "y"\n', 1, "unexpected character"),
    ("control-character-is-not-blank", "\x1cA=1\n", 1, "unexpected character"),
    ("unterminated-double", f'A=1\nB="{PASSWORD}\nC=3\n', 2, "unterminated quoted value"),
    ("unterminated-single", f"B='{PASSWORD}", 1, "unterminated quoted value"),
    ("escaped-closing-quote", f'B="{PASSWORD}\\"\n', 1, "unterminated quoted value"),
    ("required-unset", f"A=1\nB={PASSWORD}${{NOPE:?set it}}\n", 2, "required variable NOPE"),
    ("required-unset-no-colon", f"B={PASSWORD}${{NOPE?}}\n", 1, "required variable NOPE"),
    ("required-empty", f"B={PASSWORD}${{EMPTY:?}}\n", 1, "required variable EMPTY"),
    (
        "required-in-unused-default",
        f"B=${{P:-${{NOPE:?}}}}{PASSWORD}\n",
        1,
        "required variable NOPE",
    ),
    ("dollar-brace-unclosed", f"B={PASSWORD}${{\n", 1, "invalid variable reference"),
    ("dollar-brace-empty", f"B={PASSWORD}${{}}\n", 1, "invalid variable reference"),
    ("dollar-brace-digit", f"B={PASSWORD}${{1}}\n", 1, "invalid variable reference"),
    ("unknown-operator", f"B={PASSWORD}${{P:x}}\n", 1, "invalid variable reference"),
    ("default-without-closing-brace", f"B={PASSWORD}${{NOPE:-x\n", 1, "invalid variable reference"),
    ("closing-brace-on-next-line", f'A=1\nB="{PASSWORD}${{NOPE:-x\n}}"\n', 2, "invalid variable"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_env(text: str, expected: dict[str, str]) -> None:
    assert parse_env(text, ENV.get) == expected


@pytest.mark.parametrize(
    ("text", "line", "problem"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_name_the_line_never_the_value(text: str, line: int, problem: str) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env(text, ENV.get)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    assert problem in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert "set it" not in str(caught.value)


def test_env_file_error_is_a_value_error() -> None:
    assert issubclass(EnvFileError, ValueError)


def test_lookup_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNOUT_ENVFILE_TEST", "from-process")
    assert parse_env("A=${TURNOUT_ENVFILE_TEST}\nTURNOUT_ENVFILE_TEST\n") == {
        "A": "from-process",
        "TURNOUT_ENVFILE_TEST": "from-process",
    }


def test_read_env_file(tmp_path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b'\xef\xbb\xbfA=1\r\nB="x\ry"\nC=caf\xc3\xa9\n')
    assert read_env_file(str(path), lookup={}.get) == {"A": "1", "B": "x\ry", "C": "café"}


def test_read_env_file_error_names_the_file(tmp_path) -> None:
    path = tmp_path / ".env"
    path.write_text(f"A=1\nB='{PASSWORD}\n")
    with pytest.raises(EnvFileError) as caught:
        read_env_file(str(path), lookup={}.get)
    assert str(caught.value) == f"{path}: line 2: unterminated quoted value"
    assert (caught.value.path, caught.value.line) == (str(path), 2)


def test_read_env_file_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        read_env_file(str(tmp_path / "absent.env"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_read_env_file_unreadable(tmp_path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    path.chmod(0)
    with pytest.raises(PermissionError):
        read_env_file(str(path))
