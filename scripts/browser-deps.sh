#!/usr/bin/env bash
# What the browser tests need, installed only when missing:
#   - Chromium from Debian (Playwright drives it by path; `playwright install` is never run),
#   - fonts-noto-core, so Devanagari, Arabic and Nastaliq text renders with real glyphs,
#   - axe-core from the npm registry, pinned, in the machine's cache outside the repository.
# Prints the path of axe.min.js on its last line; the tests read the same path.
set -euo pipefail

AXE_CORE_VERSION=4.14.1
here=$(cd "$(dirname "$0")" && pwd)

"$here/ensure-system-packages.sh" chromium fonts-noto-core

cache=${KARMAYOGI_CACHE:-$HOME/.cache/karmayogi}
prefix="$cache/npm/axe-core-$AXE_CORE_VERSION"
axe="$prefix/node_modules/axe-core/axe.min.js"
if [ ! -s "$axe" ]; then
  if ! command -v npm >/dev/null; then
    echo "browser-deps: npm is missing; install it (apt-get install npm) to fetch axe-core" >&2
    exit 1
  fi
  mkdir -p "$prefix"
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  # --prefix keeps node_modules in the cache; no package.json or lock file lands in the repo.
  if ! npm install --prefix "$prefix" --no-audit --no-fund --no-save --silent \
    "axe-core@$AXE_CORE_VERSION" >"$log" 2>&1; then
    cat "$log" >&2
    echo "browser-deps: could not install axe-core@$AXE_CORE_VERSION (npm output above)" >&2
    exit 1
  fi
  if [ ! -s "$axe" ]; then
    echo "browser-deps: npm succeeded but $axe is missing" >&2
    exit 1
  fi
  echo "installed axe-core@$AXE_CORE_VERSION"
fi
echo "$axe"
