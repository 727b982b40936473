"""``turnout.hostside.envfile`` against Docker Compose itself.

Each test writes a ``.env`` file and a compose file whose one service (``image: busybox``, never
pulled) maps every variable as ``KEY: ${KEY}``, runs ``docker compose --env-file <f> -f <compose>
config --format json`` (client-side: no engine needed) with a controlled environment, and checks
that ``read_env_file(path, lookup=env.get)`` gives what compose puts in the service's environment.

Two things of compose to keep in mind when reading the assertions:

- ``config`` writes every ``$`` of a value as ``$$`` (so its output can be read back as a compose
  file); ``compose_environment`` undoes that.
- When compose interpolates ``${KEY}`` in the compose file, a variable of the process environment
  wins over the ``.env`` file. So the comparison is about the ``.env`` parsing only for keys the
  environment does not set; the one key set in both (``SHADOWED``) is the precedence case, checked
  on purpose: the file's value is what ``read_env_file`` returns, the process's is what the app
  gets (``host_dsn`` looks at the process environment first, for the same reason).

``HOME`` is passed on because the docker CLI finds the compose plugin under ``~/.docker``.
"""

import json
import os
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from turnout.hostside.envfile import EnvFileError, read_env_file

PASSWORD = "p@ss:w/o%rd#1 'q' \"dq\" end"
DSN = f"postgresql://app:{PASSWORD}@db.internal:5432/app"
DSN_ENCODED = f"postgresql://app:{urllib.parse.quote(PASSWORD, safe='')}@db.internal:5432/app"

# Every rule at least once. Comments on the right say what the line exercises.
ENV_FILE = (
    "# a comment line\n"
    "   # an indented comment\n"
    "\n"
    "export EXPORTED=exported\n"
    "SPACED   =   spaced value   \n"
    "INLINE=value # an inline comment\n"
    "HASH=a#b\n"
    "TAB_HASH=x\t#y\n"
    "EMPTY_VALUE=\n"
    "YAML_STYLE: yaml value\n"
    "CRLF=crlf\r\n"
    "SINGLE='literal $FROM_ENV ${NOPE:-x} $$ \\n #not-a-comment'\n"
    "SINGLE_ESCAPED_QUOTE='it\\'s'\n"
    "SINGLE_MULTILINE='line one\n"
    "line two'\n"
    'DOUBLE="tab\\there \\"quoted\\" back\\\\slash \\$FROM_ENV $FROM_ENV #not-a-comment"\n'
    'DOUBLE_MULTILINE="line one\n'
    'line two ${FROM_ENV}"\n'
    'OCTAL="\\0101\\0102|\\012"\n'
    'QUOTED="a" AFTER_QUOTE=b # a statement after a closing quote\n'
    "DOLLARS=$$FROM_ENV $$$FROM_ENV a$ b $1\n"
    "BRACED=${FROM_ENV}-suffix\n"
    "BARE=$FROM_ENV/suffix\n"
    "UNSET=[${NOPE}$NOPE]\n"
    "DEFAULT_UNSET=${NOPE:-fallback}\n"
    "DEFAULT_EMPTY=${EMPTY_IN_ENV:-fallback}\n"
    "DEFAULT_HARD_EMPTY=${EMPTY_IN_ENV-fallback}\n"
    "DEFAULT_HARD_UNSET=${NOPE-fallback}\n"
    "ALT_SET=${FROM_ENV:+alternative}\n"
    "ALT_EMPTY=${EMPTY_IN_ENV:+alternative}\n"
    "ALT_PLUS_EMPTY=${EMPTY_IN_ENV+alternative}\n"
    "ALT_UNSET=${NOPE+alternative}\n"
    "REQUIRED_SET=${FROM_ENV:?must be set}\n"
    "REQUIRED_EMPTY_OK=${EMPTY_IN_ENV?must be set}\n"
    "NESTED=${NOPE:-${ALSO_NOPE:-<${FROM_ENV}>}}\n"
    "EARLIER=${EXPORTED}+${SPACED}\n"
    "DUPLICATE=first\n"
    "DUPLICATE=last\n"
    "INHERITED_SET\n"
    "INHERITED_UNSET\n"
    "DB_USER=app\n"
    f"DB_PASSWORD='{PASSWORD.replace(chr(39), chr(92) + chr(39))}'\n"
    f'DATABASE_URL="{DSN.replace(chr(34), chr(92) + chr(34))}"\n'
    f"DSN_SINGLE='{DSN.replace(chr(39), chr(92) + chr(39))}'\n"
    f"DSN_ENCODED={DSN_ENCODED} # percent-encoded, unquoted\n"
    'DSN_COMPOSED="postgresql://${DB_USER}:${DB_PASSWORD}@${DB_HOST:-db.internal}:${DB_PORT-5432}/app"\n'
    "SHADOWED=from-file\n"
    "SEES_SHADOWED=${SHADOWED}\n"
)

# What the file references from the process environment (and SHADOWED, the precedence case).
PROCESS_ENV = {
    "FROM_ENV": "from env",
    "EMPTY_IN_ENV": "",
    "INHERITED_SET": "inherited",
    "SHADOWED": "from-process",
}


def compose_available() -> bool:
    try:
        result = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


pytestmark = pytest.mark.skipif(
    not compose_available(), reason="`docker compose version` is not runnable here"
)


def minimal_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ["HOME"], **extra}


def compose_config(
    directory: Path, env_file: Path, environment: dict | list, env: dict[str, str]
) -> subprocess.CompletedProcess:
    """``docker compose config --format json`` of a one-service project (JSON is YAML)."""
    project = {"services": {"app": {"image": "busybox", "environment": environment}}}
    compose_file = directory / "compose.json"
    compose_file.write_text(json.dumps(project))
    argv = ["docker", "compose", "-p", "turnout-envfile-test", "--env-file", str(env_file)]
    argv += ["-f", str(compose_file), "config", "--format", "json"]
    return subprocess.run(
        argv, cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def compose_environment(result: subprocess.CompletedProcess) -> dict[str, str | None]:
    """The service's environment from ``config`` output, with its ``$$`` back to ``$``."""
    assert result.returncode == 0, result.stderr
    environment = json.loads(result.stdout)["services"]["app"].get("environment") or {}
    return {k: None if v is None else v.replace("$$", "$") for k, v in environment.items()}


def write_env_file(directory: Path, text: str) -> Path:
    path = directory / "app.env"
    path.write_bytes(text.encode("utf-8"))
    return path


def test_every_rule_matches_compose(tmp_path: Path) -> None:
    env = minimal_env(**PROCESS_ENV)
    path = write_env_file(tmp_path, ENV_FILE)
    ours = read_env_file(str(path), lookup=env.get)
    keys = [*ours, "INHERITED_UNSET"]
    theirs = compose_environment(
        compose_config(tmp_path, path, {k: f"${{{k}}}" for k in keys}, env)
    )

    # Compose-file interpolation: the process environment first, then the .env file.
    assert {key: env.get(key, value) for key, value in ours.items()} == {
        key: theirs[key] for key in ours
    }
    # A key alone on its line and unset in the environment: not defined at all (compose then
    # interpolates it as empty, with a warning).
    assert "INHERITED_UNSET" not in ours
    assert theirs["INHERITED_UNSET"] == ""
    # The precedence case, on purpose.
    assert ours["SHADOWED"] == "from-file"
    assert theirs["SHADOWED"] == "from-process"
    # Inside the .env file, expansion also looks at the process environment first.
    assert ours["SEES_SHADOWED"] == theirs["SEES_SHADOWED"] == "from-process"


def test_the_dsn_with_a_hard_password_is_read_as_compose_reads_it(tmp_path: Path) -> None:
    env = minimal_env(**PROCESS_ENV)
    path = write_env_file(tmp_path, ENV_FILE)
    ours = read_env_file(str(path), lookup=env.get)
    names = ["DB_PASSWORD", "DATABASE_URL", "DSN_SINGLE", "DSN_ENCODED", "DSN_COMPOSED"]
    theirs = compose_environment(
        compose_config(tmp_path, path, {k: f"${{{k}}}" for k in names}, env)
    )

    assert {name: ours[name] for name in names} == theirs
    assert ours["DB_PASSWORD"] == PASSWORD
    assert ours["DATABASE_URL"] == ours["DSN_SINGLE"] == ours["DSN_COMPOSED"] == DSN
    assert urllib.parse.unquote(ours["DSN_ENCODED"]) == DSN


def test_keys_that_cannot_be_interpolated(tmp_path: Path) -> None:
    """Keys with ``. - [ ]``, a leading digit or a letter beyond ASCII: compose cannot write
    ``${a.b}``, but a bare name in a service's ``environment`` list takes its value from the
    same variables."""
    env = minimal_env()
    path = write_env_file(tmp_path, "a.b=dotted\nk-1=dashed\nA[0]=indexed\n1KEY=digit\nCAFÉ=é\n")
    ours = read_env_file(str(path), lookup=env.get)
    theirs = compose_environment(compose_config(tmp_path, path, list(ours), env))
    expected = {"a.b": "dotted", "k-1": "dashed", "A[0]": "indexed", "1KEY": "digit", "CAFÉ": "é"}
    assert ours == theirs == expected


BAD_FILES = [
    ("space-in-key", "A=1\nMY KEY=x\n", 2),
    ("bad-key-character", "A=1\nK$Y=x\n", 2),
    ("unterminated-double-quote", 'A=1\nB="x\nC=3\n', 2),
    ("unterminated-single-quote", "B='x", 1),
    ("required-unset", "B=${NOPE:?set it}\n", 1),
    ("required-empty", "B=${EMPTY_IN_ENV:?}\n", 1),
    ("invalid-reference", "A=1\nB=${1}\n", 2),
    ("unclosed-default", "B=${NOPE:-x\n", 1),
    ("text-after-quote", 'B="x"  "y"\n', 1),
]


@pytest.mark.parametrize(
    ("text", "line"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_where_compose_fails_we_fail(tmp_path: Path, text: str, line: int) -> None:
    env = minimal_env(EMPTY_IN_ENV="")
    path = write_env_file(tmp_path, text)
    result = compose_config(tmp_path, path, {"A": "${A}"}, env)
    assert result.returncode != 0
    assert "failed to read" in result.stderr
    with pytest.raises(EnvFileError) as caught:
        read_env_file(str(path), lookup=env.get)
    assert caught.value.line == line
