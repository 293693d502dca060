#!/usr/bin/env bash
# Install the Debian packages named as arguments that are not installed yet, e.g.
#   scripts/ensure-system-packages.sh postgresql-15 chromium
#   scripts/ensure-system-packages.sh --no-start nginx   # a server the tests run themselves
# Idempotent: when all are present it does nothing (no apt-get update either) and exits 0.
# Prints one line per package it installed. With --no-start, the packages' services are not
# started by the installation (Debian's policy-rc.d), so no system nginx takes port 80.
set -euo pipefail

no_start=false
if [ "${1:-}" = "--no-start" ]; then
  no_start=true
  shift
fi
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
policy=/usr/sbin/policy-rc.d
cleanup() {
  rm -f "$log"
  if [ "$no_start" = true ] && [ -f "$policy.karmayogi" ]; then
    rm -f "$policy" "$policy.karmayogi"
  fi
}
trap cleanup EXIT
if [ "$no_start" = true ] && [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  touch "$policy.karmayogi"  # ours to remove, unlike a policy the machine already had
fi
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
