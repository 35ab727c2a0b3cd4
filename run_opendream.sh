#!/usr/bin/env bash
# Opendream's one entry point on a fresh machine.
#   ./run_opendream.sh [serve options]   set up .venv, run migrations, start the server (SQLite + builtin:tiny)
#   ./run_opendream.sh test [pytest args] same set-up, then the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
venv="$root/.venv"
python=${PYTHON:-python3}

setup() {
  if [ ! -x "$venv/bin/python" ]; then
    echo "opendream: creating $venv" >&2
    "$python" -m venv "$venv"
  fi
  # Reinstall only when what decides the install changed.
  local want have
  want=$(cat pyproject.toml constraints-cpu.txt | sha256sum | cut -d' ' -f1)
  have=$(cat "$venv/.opendream-install" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    local constraints=()
    if ! command -v nvidia-smi >/dev/null 2>&1; then
      constraints=(-c constraints-cpu.txt)  # no CUDA here: the CPU wheel of torch
    fi
    echo "opendream: installing into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${constraints[@]}" -e ".[test]"
    echo "$want" >"$venv/.opendream-install"
  fi
}

# The browser tests (tests/browser) drive the distribution's headless Chromium (Playwright cannot download
# one here); the client's unit tests run on Node. Install what is missing, as root or with sudo; idempotent.
# If Chromium cannot be installed the browser tests fail and say so: they never skip silently.
browser_setup() {
  local packages=()
  if [ -z "${OPENDREAM_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 \
    && ! command -v chromium-browser >/dev/null 2>&1; then
    packages+=(chromium)
  fi
  command -v node >/dev/null 2>&1 || packages+=(nodejs)
  [ ${#packages[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "opendream: cannot install ${packages[*]} (not root, no sudo): the browser tests will fail" >&2
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "opendream: no apt-get to install ${packages[*]}: the browser tests will fail" >&2
    return 0
  fi
  echo "opendream: installing ${packages[*]} for the browser tests" >&2
  local log
  log=$(mktemp)
  if ! { "${sudo[@]}" apt-get update -qq \
    && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "opendream: installing ${packages[*]} failed: the browser tests will fail" >&2
  fi
  rm -f "$log"
}

setup
case "${1:-serve}" in
  test)
    shift || true
    browser_setup
    exec "$venv/bin/python" -m pytest "$@"
    ;;
  serve)
    [ $# -gt 0 ] && shift
    exec "$venv/bin/opendream" serve "$@"
    ;;
  *)
    exec "$venv/bin/opendream" serve "$@"
    ;;
esac
