#!/usr/bin/env bash
# Create the project's virtualenv on a fresh Debian machine: installs python3-venv when the
# interpreter cannot make one (Debian splits it out), then the kit with its dev tools.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: $python is missing or older than 3.11; install Python 3.11 (apt-get install python3)" >&2
  exit 1
fi
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing python3-venv" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "bootstrap: $python cannot create a virtualenv; install python3-venv" >&2
    exit 1
  fi
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
# setuptools warns on every editable install that folders named like the packages may shadow
# them; here those folders are the packages. Only that one message is silenced.
PYTHONWARNINGS="ignore:Editable installation" \
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
