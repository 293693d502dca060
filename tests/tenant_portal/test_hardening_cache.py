"""Security headers on every response, cached or not, and a page cache that extra query
parameters can neither bypass nor fill (issue "Hardening", items 4 and 6)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from django.test import Client

from tenant_portal.catalogue.models import CatalogueIndexPage, CoursePage
from tenant_portal.core import page_cache
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.learning import add_course, prepare_site

pytestmark = pytest.mark.django_db

HEADERS = ("Content-Security-Policy", "Permissions-Policy", "X-Frame-Options")


@pytest.fixture
def catalogue() -> CatalogueIndexPage:
    return prepare_site()


@pytest.fixture
def course(catalogue: CatalogueIndexPage) -> CoursePage:
    return add_course(catalogue, "notes")


def directives(response: Any) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def test_a_cached_page_carries_the_same_security_headers_as_a_fresh_one(
    course: CoursePage,
) -> None:
    for url in ("/courses/", course.url):
        miss = Client().get(url)
        hit = Client().get(url)
        assert (miss.get("X-Page-Cache"), hit.get("X-Page-Cache")) == ("miss", "hit")
        for header in HEADERS:
            assert miss.get(header), header
            assert hit.get(header) == miss.get(header), header
        assert hit["X-Frame-Options"] == "DENY"


def test_public_pages_have_a_strict_policy_that_allows_only_their_own_inline_style(
    course: CoursePage, settings: Any
) -> None:
    set_portal(settings, oidc={"issuer": "https://id.example.org/realms/bihar"})
    for url in ("/courses/", course.url, "/no-such-page/"):
        response = Client().get(url)
        policy = directives(response)
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["object-src"] == ["'none'"]
        # Sign-out posts here and is redirected to the realm: the issuer's origin, no path.
        assert policy["form-action"] == ["'self'", "https://id.example.org"]
        assert not any("unsafe" in source for d in policy.values() for source in d)
        html = response.content.decode()
        # No inline script (a JSON-LD data block is not run), no style attribute; the one
        # <style> is allowed by its hash.
        assert not re.search(r"<script(?![^>]*\b(src=|type=\"application/ld\+json\"))", html)
        assert not re.search(r"\sstyle=", html)
        styles = re.findall(r"<style>(.*?)</style>", html, re.S)
        assert len(styles) == 1 and "--brand-primary" in styles[0]
        digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
        assert policy["style-src"] == ["'self'", f"'sha256-{digest}'"]
    permissions = Client().get("/courses/")["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()"):
        assert feature in permissions


def test_the_admin_gets_its_own_looser_policy_and_may_frame_itself(
    catalogue: CatalogueIndexPage,
) -> None:
    response = Client().get("/admin/")
    policy = directives(response)
    assert "'unsafe-inline'" in policy["script-src"]
    assert policy["frame-ancestors"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"  # only Wagtail's preview says SAMEORIGIN
    assert "'unsafe-inline'" not in directives(Client().get("/courses/"))["script-src"]


def test_extra_query_parameters_are_served_from_the_cache_and_never_fill_it(
    course: CoursePage,
) -> None:
    # A cold path asked for with a stray parameter first: answered, not stored (the page may
    # echo the parameter, and that must not reach the next visitor).
    assert Client().get(f"{course.url}?utm_source=x1").get("X-Page-Cache") is None
    assert Client().get(course.url).get("X-Page-Cache") == "miss"
    for n in range(5):
        hit = Client().get(f"{course.url}?utm_source=x{n}&fbclid={n}")
        assert hit.get("X-Page-Cache") == "hit"
        assert f"x{n}" not in hit.content.decode()

    # The catalogue is keyed on its filters: a filter is its own page, a stray parameter not.
    bare = Client().get("/courses/")
    assert bare.get("X-Page-Cache") == "miss"
    assert Client().get("/courses/?rand=123").get("X-Page-Cache") == "hit"
    filtered = Client().get("/courses/?area=behavioural&rand=1")
    assert filtered.get("X-Page-Cache") is None  # not stored: it carried a stray parameter
    stored = Client().get("/courses/?area=behavioural")
    assert stored.get("X-Page-Cache") == "miss"
    again = Client().get("/courses/?rand=9&area=behavioural")
    assert again.get("X-Page-Cache") == "hit"
    assert again.content == stored.content != bare.content


def test_a_page_keeps_a_bounded_number_of_variants(
    catalogue: CatalogueIndexPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page_cache, "MAX_VARIANTS", 3)
    seen = [Client().get(f"/courses/?q=word{n}").get("X-Page-Cache") for n in range(6)]
    assert seen == ["miss", "miss", "miss", None, None, None]
    assert Client().get("/courses/?q=word0").get("X-Page-Cache") == "hit"
