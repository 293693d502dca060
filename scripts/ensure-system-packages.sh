#!/usr/bin/env bash
# Install the Debian packages named as arguments that are not installed yet, e.g.
#   scripts/ensure-system-packages.sh postgresql-15 chromium
# Idempotent: when all are present it does nothing (no apt-get update either) and exits 0.
# Prints one line per package it installed.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 PACKAGE..." >&2
  exit 2
fi

is_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for package in "$@"; do
  is_installed "$package" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "ensure-system-packages: missing ${missing[*]}; as root run: apt-get install ${missing[*]}" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-system-packages: could not install ${missing[*]} (apt-get output above)" >&2
  exit 1
fi
for package in "${missing[@]}"; do
  if ! is_installed "$package"; then
    echo "ensure-system-packages: apt-get succeeded but $package is still not installed" >&2
    exit 1
  fi
  echo "installed $package"
done
