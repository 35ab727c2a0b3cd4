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

setup
case "${1:-serve}" in
  test)
    shift || true
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
