#!/usr/bin/env bash
# Compile the portal's translation catalogues (.po -> .mo) in place; the .mo files are build
# output, never committed. Usage: scripts/compile-translations.sh [LOCALE_DIR]
# (default: tenant_portal/locale beside this script; the tests pass a temporary copy).
#
# To refresh the catalogues after changing a translatable string, from the repository root:
#   cd tenant_portal && DJANGO_SETTINGS_MODULE=tenant_portal.settings.dev \
#     KARMAYOGI_DATA_DIR=$(mktemp -d) ../.venv/bin/python -m tenant_portal.manage \
#     makemessages -l hi -l en
# then translate every new or changed entry in hi/LC_MESSAGES/django.po.
set -euo pipefail

locale_dir=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tenant_portal/locale"}

if ! command -v msgfmt >/dev/null 2>&1; then
  echo "compile-translations: msgfmt not found; install GNU gettext (apt-get install gettext)" >&2
  exit 1
fi
if [ ! -d "$locale_dir" ]; then
  echo "compile-translations: no locale directory at $locale_dir" >&2
  exit 1
fi

shopt -s nullglob
catalogues=("$locale_dir"/*/LC_MESSAGES/django.po)
if [ "${#catalogues[@]}" -eq 0 ]; then
  echo "compile-translations: no */LC_MESSAGES/django.po under $locale_dir" >&2
  exit 1
fi

for po in "${catalogues[@]}"; do
  # --check: header, format strings (%(name)s) and domain are verified; any error fails.
  if ! msgfmt --check -o "${po%.po}.mo" "$po"; then
    echo "compile-translations: $po has errors (see above)" >&2
    exit 1
  fi
done
