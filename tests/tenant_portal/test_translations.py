"""The portal's own English and Hindi catalogues: well-formed, complete, in step with the code.

No database and no Keycloak: the catalogues are compiled and the strings re-extracted into
temporary copies, so the working tree is never written to.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.template import Context, Template
from django.test import override_settings
from django.utils import translation

REPO = Path(__file__).resolve().parents[2]
PORTAL = REPO / "tenant_portal"
LOCALE = PORTAL / "locale"
HINDI = LOCALE / "hi" / "LC_MESSAGES" / "django.po"
COMPILE = REPO / "scripts" / "compile-translations.sh"
REGENERATE = (
    "cd tenant_portal && DJANGO_SETTINGS_MODULE=tenant_portal.settings.dev "
    "KARMAYOGI_DATA_DIR=$(mktemp -d) ../.venv/bin/python -m tenant_portal.manage "
    "makemessages -l hi -l en, then translate the new entries in "
    "tenant_portal/locale/hi/LC_MESSAGES/django.po"
)
DEVANAGARI = re.compile("[\u0900-\u097f]")
# printf-style directives as Python's % operator reads them: %(name)s, %s, %d, %%, ...
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")


@dataclass(frozen=True)
class Entry:
    """One message of a .po file (the header and obsolete ``#~`` entries are not entries)."""

    msgctxt: str | None
    msgid: str
    msgid_plural: str | None
    msgstrs: tuple[str, ...]
    flags: frozenset[str]

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.msgctxt, self.msgid)

    def __str__(self) -> str:
        context = f" (context {self.msgctxt!r})" if self.msgctxt is not None else ""
        return f"{self.msgid!r}{context}"


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file; enough of the format for what makemessages writes."""
    entries: list[Entry] = []
    fields: dict[str, str] = {}
    flags: set[str] = set()
    keyword = ""

    def flush() -> None:
        nonlocal fields, flags
        if fields.get("msgid"):  # the header is the entry with an empty msgid
            plural_keys = sorted(
                (k for k in fields if k.startswith("msgstr[")), key=lambda k: int(k[7:-1])
            )
            entries.append(
                Entry(
                    msgctxt=fields.get("msgctxt"),
                    msgid=fields["msgid"],
                    msgid_plural=fields.get("msgid_plural"),
                    msgstrs=tuple(fields[k] for k in plural_keys) or (fields.get("msgstr", ""),),
                    flags=frozenset(flags),
                )
            )
        fields, flags = {}, set()

    def has_msgstr() -> bool:
        return any(k.startswith("msgstr") for k in fields)

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("#~"):
            continue
        elif line.startswith("#"):
            if has_msgstr():
                flush()
            if line.startswith("#,"):
                flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith('"'):
            fields[keyword] += _po_string(line, path, number)
        else:
            word, _, rest = line.partition(" ")
            if word in ("msgctxt", "msgid") and has_msgstr():
                flush()
            keyword = word
            fields[keyword] = _po_string(rest, path, number)
    flush()
    return entries


def _po_string(literal: str, path: Path, number: int) -> str:
    value = ast.literal_eval(literal)  # PO strings use the C escapes Python shares
    if not isinstance(value, str):
        raise ValueError(f"{path}:{number}: not a quoted string: {literal}")
    return value


def placeholders(text: str) -> Counter[str]:
    return Counter(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module")
def compiled_locale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the portal's locale directory, compiled by the project's own script."""
    locale = tmp_path_factory.mktemp("compiled") / "locale"
    shutil.copytree(LOCALE, locale, ignore=shutil.ignore_patterns("*.mo"))
    result = subprocess.run(
        [str(COMPILE), str(locale)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"msgfmt --check failed:\n{result.stderr}"
    return locale


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> list[Entry]:
    """The messages makemessages finds in the code now, extracted in a copy of tenant_portal/."""
    copy = tmp_path_factory.mktemp("extract") / "tenant_portal"
    shutil.copytree(PORTAL, copy, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (copy / "locale").mkdir()
    with pytest.MonkeyPatch.context() as mp, override_settings(LOCALE_PATHS=[copy / "locale"]):
        mp.chdir(copy)  # makemessages walks the current directory
        call_command("makemessages", locale=["hi"], verbosity=0)
    return read_po(copy / "locale" / "hi" / "LC_MESSAGES" / "django.po")


@pytest.fixture
def hindi_catalogue(compiled_locale: Path) -> Iterator[None]:
    """Django reads the compiled copy, not whatever .mo the working tree may hold."""
    with override_settings(LOCALE_PATHS=[compiled_locale]):
        yield


def test_every_catalogue_compiles_with_msgfmt_check(compiled_locale: Path) -> None:
    compiled = sorted(mo.parent.parent.name for mo in compiled_locale.glob("*/LC_MESSAGES/*.mo"))
    sources = sorted(po.parent.parent.name for po in LOCALE.glob("*/LC_MESSAGES/django.po"))
    assert {"en", "hi"} <= set(compiled) and compiled == sources


def test_every_language_a_spec_accepts_can_be_a_portals_language(compiled_locale: Path) -> None:
    """Django refuses a first language, or a switch to a language, with no catalogue at all:
    each language the kit accepts has one (empty where the interface is not translated)."""
    from django.utils.translation import trans_real

    from infra.spec.languages import LANGUAGES

    cached = trans_real.translation_catalog_exists  # Django caches the lookup per code
    with override_settings(LOCALE_PATHS=[compiled_locale]):
        cached.cache_clear()
        try:
            refused = [code for code in LANGUAGES if not trans_real.check_for_language(code)]
        finally:
            cached.cache_clear()
    assert refused == []


def test_compile_script_fails_on_a_broken_placeholder(tmp_path: Path) -> None:
    catalogue = tmp_path / "hi" / "LC_MESSAGES" / "django.po"
    catalogue.parent.mkdir(parents=True)
    catalogue.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        '#, python-format\nmsgid "Signed in as %(name)s"\nmsgstr "%(naam)s"\n',
        encoding="utf-8",
    )
    result = subprocess.run([str(COMPILE), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "has errors" in result.stderr


def test_compile_script_names_the_package_when_msgfmt_is_missing(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash
    result = subprocess.run(
        [bash, str(COMPILE), str(LOCALE)],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path)},  # an empty directory: no msgfmt on it
    )
    assert result.returncode == 1
    assert "apt-get install gettext" in result.stderr


def test_every_hindi_message_is_translated_into_devanagari() -> None:
    entries = read_po(HINDI)
    assert entries, f"{HINDI} holds no messages"
    problems: list[str] = []
    for entry in entries:
        if "fuzzy" in entry.flags:
            problems.append(f"{entry} is marked fuzzy: check the translation, drop the flag")
        for msgstr in entry.msgstrs:
            if not msgstr.strip():
                problems.append(f"{entry} has no Hindi translation")
            elif not DEVANAGARI.search(msgstr):
                problems.append(f"{entry} is translated as {msgstr!r}, with no Devanagari")
            elif "python-format" in entry.flags:
                source = placeholders(entry.msgid_plural or entry.msgid)
                if placeholders(msgstr) != source:
                    problems.append(
                        f"{entry} has placeholders {sorted(placeholders(msgstr).elements())} in "
                        f"{msgstr!r}; the English has {sorted(source.elements())}"
                    )
    assert not problems, "\n".join(problems)


def test_hindi_catalogue_holds_every_message_in_the_code(extracted: list[Entry]) -> None:
    assert extracted, "makemessages found no messages in tenant_portal/"
    known = {entry.key for entry in read_po(HINDI)}
    missing = [str(entry) for entry in extracted if entry.key not in known]
    assert not missing, (
        "messages in the code with no Hindi entry:\n  " + "\n  ".join(missing) + f"\n{REGENERATE}"
    )


def test_hindi_catalogue_holds_no_message_gone_from_the_code(extracted: list[Entry]) -> None:
    current = {entry.key for entry in extracted}
    stale = [str(entry) for entry in read_po(HINDI) if entry.key not in current]
    assert not stale, (
        "Hindi entries for messages no longer in the code:\n  "
        + "\n  ".join(stale)
        + f"\n{REGENERATE}"
    )


@pytest.mark.usefixtures("hindi_catalogue")
def test_django_serves_the_portal_strings_in_hindi() -> None:
    translations = {entry.msgid: entry.msgstrs[0] for entry in read_po(HINDI)}
    template = Template(
        "{% load i18n %}{% translate 'Sign in' %}|"
        "{% blocktranslate with name='Sunita Devi' %}Signed in as {{ name }}{% endblocktranslate %}"
    )
    with translation.override("hi"):
        rendered = template.render(Context())
    assert rendered == "|".join(
        [
            translations["Sign in"],
            translations["Signed in as %(name)s"] % {"name": "Sunita Devi"},
        ]
    )
    with translation.override("en"):
        assert template.render(Context()) == "Sign in|Signed in as Sunita Devi"
