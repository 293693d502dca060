"""No language leaks (issue 19, item 5): a walk of every page of each example tenant, in two of
its languages, signed out and signed in, fails where a text shows in another language although
a translation in the chosen one exists.

What counts as "a translation exists": the portal's own message catalogues (an English message
and its translation) and every language map the pages draw on (course names and summaries,
the competency framework, posts, certificates, providers). Each such text has a form per
language; a text node equal to one of its forms in another language, while it has a form in the
chosen language, is a leak. The language switcher names each language in itself, on purpose,
and is left out.

The walk follows every link from the home page that stays on the portal's pages (not the admin,
sign-in, downloads or machine endpoints), over a portal started in the test (the test client).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings as django_settings
from django.conf.locale import LANG_INFO
from django.test import Client
from django.utils import translation

from tenant_portal.catalogue.models import CatalogueEntry, CatalogueIndexPage
from tenant_portal.competencies.models import Area, Post, ProficiencyLevel, SubTheme, Theme
from tenant_portal.learning.models import Certificate
from tests.tenant_portal.learning import PROVIDER, add_course, finish, make_user, prepare_site
from tests.tenant_portal.test_query_counts import sign_in
from tests.tenant_portal.test_role_based import federated_course, make_post
from tests.tenant_portal.test_translations import LOCALE, read_po

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "tenants").glob("*.yaml"))
MAX_PAGES = 60
# Not pages a reader walks: the admin, sign-in and out, downloads and machine endpoints.
SKIPPED = re.compile(
    r"^/(admin|cms|auth|oidc|federation|oai|xapi|documents|static|media|i18n)(/|$)"
    r"|/(pdf|csv|credential)/$"
)


def spec_languages(path: Path) -> list[str]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [str(code) for code in spec["spec"]["languages"]]


# --- what has a translation -----------------------------------------------------------------


def catalogue_units(languages: Iterable[str]) -> Iterator[dict[str, str]]:
    """The portal's messages with a translation in one of ``languages``: {en: msgid, xx: …}."""
    for language in languages:
        po = LOCALE / language / "LC_MESSAGES" / "django.po"
        if language == "en" or not po.exists():
            continue
        for entry in read_po(po):
            text = entry.msgstrs[0]
            if entry.msgid_plural is None and text and "%" not in entry.msgid:
                yield {"en": entry.msgid, language: text}


def data_units() -> Iterator[dict[str, str]]:
    """Every language map the walked pages draw on."""
    yield PROVIDER
    for entry in CatalogueEntry.objects.all():
        yield entry.name
        yield entry.description
        yield getattr(entry, "provider_name", {}) or {}
    for model in (Area, Theme, SubTheme, Post, ProficiencyLevel):
        for row in model.objects.all():
            yield row.name
    for certificate in Certificate.objects.all():
        yield certificate.course_name


def foreign_forms(units: Iterable[dict[str, str]], language: str) -> dict[str, str]:
    """Text in another language → its form in ``language``, for texts that have one; a text
    that is itself some unit's form in ``language`` is never foreign."""
    own: set[str] = set()
    foreign: dict[str, str] = {}
    for unit in units:
        forms = {code: " ".join(text.split()) for code, text in unit.items() if text}
        chosen = forms.get(language)
        if not chosen:
            continue
        own.add(chosen)
        for text in forms.values():
            if text != chosen and len(text) > 1:
                foreign[text] = chosen
    return {text: chosen for text, chosen in foreign.items() if text not in own}


# --- the pages ------------------------------------------------------------------------------


class Reader(HTMLParser):
    """A page's visible text nodes and the labels assistive technology reads, and its links;
    the language switcher left out."""

    VOID = frozenset({"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.links: list[str] = []
        self._stack: list[str] = []
        self._skip_depth: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if self._skip_depth is None:
            for name in ("aria-label", "alt", "placeholder"):
                if found.get(name):
                    self.texts.append(str(found[name]))
        if tag in self.VOID:
            return
        self._stack.append(tag)
        switcher = "language-switcher" in (found.get("class") or "").split()
        if self._skip_depth is None and (switcher or tag in ("script", "style")):
            self._skip_depth = len(self._stack)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID or tag not in self._stack:
            return
        while self._stack:
            closed = self._stack.pop()
            if self._skip_depth is not None and len(self._stack) < self._skip_depth:
                self._skip_depth = None
            if closed == tag:
                break

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and self._skip_depth is None:
            self.texts.append(text)


def walk(client: Client) -> Iterator[tuple[str, Reader]]:
    """Every page reachable from the home page by links, breadth first."""
    queue = deque(["/"])
    seen = {"/"}
    while queue and len(seen) <= MAX_PAGES:
        url = queue.popleft()
        response = client.get(url)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        reader = Reader()
        reader.feed(response.content.decode())
        yield url, reader
        for link in reader.links:
            link = link.split("#")[0]
            local = link.startswith("/") and not link.startswith("//")
            if local and link not in seen and not SKIPPED.search(link.split("?")[0]):
                seen.add(link)
                queue.append(link)


def leaks(client: Client, language: str, forms: dict[str, str]) -> tuple[int, list[str]]:
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = language
    found: list[str] = []
    pages = 0
    for url, reader in walk(client):
        pages += 1
        for text in reader.texts:
            if text in forms:
                found.append(f"{language} {url}: {text!r} (in {language}: {forms[text]!r})")
    return pages, found


# --- the walk -------------------------------------------------------------------------------


@pytest.fixture
def tenant_languages(
    request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """The portal set up with the example tenant's languages, its first one the default."""
    languages = spec_languages(request.param)
    for code in languages:
        if code not in LANG_INFO:  # as settings.base does for the portal's own languages
            info = {"bidi": False, "code": code, "name": code, "name_local": code}
            monkeypatch.setitem(LANG_INFO, code, info)
    settings.LANGUAGES = [(code, LANG_INFO[code]["name_local"]) for code in languages]
    settings.WAGTAIL_CONTENT_LANGUAGES = settings.LANGUAGES
    settings.LANGUAGE_CODE = languages[0]
    with translation.override(languages[0]):
        yield languages


@pytest.mark.parametrize(
    "tenant_languages", EXAMPLES, ids=[path.stem for path in EXAMPLES], indirect=True
)
def test_every_page_shows_the_chosen_language_where_a_translation_exists(
    tenant_languages: list[str],
) -> None:
    walked = tenant_languages[:2]
    catalogue: CatalogueIndexPage = prepare_site()
    names = {code: f"Course in {code} ({code})" for code in tenant_languages}
    local = add_course(catalogue, "local", title={**names, "en": "Notes on files"})
    federated_course("federated", {"noting-and-drafting": 3}, walked)
    # As the sync writes a course record v1.1: the plain provider (which is also the origin's
    # name the record carries) in the origin's first language, and the provider's map.
    CatalogueEntry.objects.filter(name__en="Course federated").update(
        name={code: f"Federated course ({code})" for code in walked},
        provider=f"Origin's provider ({walked[0]})",
        origin_name=f"Origin's provider ({walked[0]})",
        provider_name={code: f"Origin's provider ({code})" for code in walked},
    )
    make_post(
        "bdo",
        {code: f"Block Development Officer ({code})" for code in walked},
        {"noting-and-drafting": 3},
    )
    officer = make_user("officer", department="health")
    signed_in = sign_in(officer)
    finish(signed_in, local)
    assert signed_in.post("/passbook/post/", {"post": "bdo"}).status_code == 302

    report: list[str] = []
    for language in walked:
        forms = foreign_forms([*catalogue_units(tenant_languages), *data_units()], language)
        for client in (Client(), signed_in):
            pages, found = leaks(client, language, forms)
            assert pages >= 4, f"the walk reached only {pages} pages in {language}"
            report.extend(found)
    assert not report, "text in another language where a translation exists:\n" + "\n".join(
        sorted(set(report))
    )


def test_the_walk_finds_a_heading_left_in_the_first_language(settings: Any) -> None:
    """The check itself: a page whose heading stays Hindi with English chosen is reported."""
    reader = Reader()
    reader.feed(
        '<form class="language-switcher"><option>हिन्दी</option></form>'
        "<h1>पाठ्यक्रम</h1><p>Courses</p><script>var x = 'पाठ्यक्रम';</script>"
    )
    forms = foreign_forms([{"en": "Courses", "hi": "पाठ्यक्रम"}, {"hi": "हिन्दी"}], "en")
    assert [text for text in reader.texts if text in forms] == ["पाठ्यक्रम"]
