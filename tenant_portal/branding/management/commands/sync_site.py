"""``manage.py sync_site``: make the Wagtail site match the rendered spec. Idempotent.

Sets the default site's host, port and name, puts a HomePage at its root (replacing Wagtail's
placeholder page on a new database), creates a Locale for each of the tenant's languages and
the groups that realm roles map to, and writes the branding into the site's BrandingSettings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from wagtail.models import Locale, Page, Site

from tenant_portal.accounts.roles import ensure_groups
from tenant_portal.branding.models import BrandingSettings
from tenant_portal.core.page_cache import bump_generation
from tenant_portal.home.models import HomePage


def ensure_catalogue(home: HomePage) -> None:
    """The catalogue page at /courses/, under the home page, once."""
    from tenant_portal.catalogue.models import CatalogueIndexPage, default_title

    if CatalogueIndexPage.objects.exists():
        return
    title = default_title(settings.LANGUAGE_CODE)
    catalogue = CatalogueIndexPage(title=title, slug="courses", locale=home.locale)
    home.add_child(instance=catalogue)
    catalogue.save_revision().publish()


class Command(BaseCommand):
    help = "Make the site, its home page, locales and branding match the rendered spec."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for code, _name in settings.LANGUAGES:
            Locale.objects.get_or_create(language_code=code)
        site = Site.objects.filter(is_default_site=True).first() or Site.objects.first()
        root = Page.get_first_root_node() or Page.add_root(
            instance=Page(title="Root", slug="root", locale=Locale.get_default())
        )
        home = HomePage.objects.first()
        if home is None:
            placeholder = site.root_page if site else None
            home = HomePage(title=settings.PORTAL.site_name, slug=f"{settings.PORTAL.tenant}-home")
            root.add_child(instance=home)
            home.save_revision().publish()
            if placeholder is not None and placeholder.specific_class is Page:
                if site is not None:
                    site.root_page = home
                    site.save()
                placeholder.delete()
        url = urlsplit(settings.PORTAL.portal_url)
        site_fields = {
            "hostname": url.hostname or "localhost",
            "port": url.port or (443 if url.scheme == "https" else 80),
            "site_name": settings.PORTAL.site_name,
            "root_page": home,
            "is_default_site": True,
        }
        if site is None:
            site = Site.objects.create(**site_fields)
        else:
            for field, value in site_fields.items():
                setattr(site, field, value)
            site.save()

        ensure_catalogue(home)
        ensure_groups()

        brand = settings.PORTAL.branding
        branding = BrandingSettings.for_site(site)
        branding.display_name = brand.site_name
        logo = Path(brand.logo) if brand.logo else None
        branding.logo_svg = (
            logo.read_text(encoding="utf-8") if logo and logo.suffix == ".svg" else ""
        )
        for field in ("primary", "on_primary", "accent", "on_accent", "link"):
            setattr(branding, field, getattr(brand, field))
        branding.full_clean()
        branding.save()
        bump_generation()  # cached pages carry the branding
        name = settings.PORTAL.site_name
        self.stdout.write(f"site {site.hostname}:{site.port} ({name}) is up to date")
