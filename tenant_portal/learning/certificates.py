"""The course-completion certificate as a PDF, with a QR code of its verification URL.

WeasyPrint lays the page out because it shapes text through Pango and HarfBuzz: Devanagari
conjuncts, reordered vowel signs and the joined forms of Arabic and Urdu come out as a reader
expects them. ReportLab places one glyph per character without shaping, which garbles every
Indic script the portal serves.

Rendering never fetches anything. Learner names, course titles and the tenant's logo end up in
the HTML, and WeasyPrint would otherwise load any ``http:`` or ``file:`` URL it finds there, so
a hostile value could make the server request internal addresses or read local files. The
fetcher given to WeasyPrint refuses every URL that is not a ``data:`` URL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import segno
import weasyprint  # type: ignore[import-untyped]
from django.conf import settings
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from weasyprint.urls import URLFetcher, URLFetcherResponse  # type: ignore[import-untyped]

from tenant_portal.competencies.models import localized
from tenant_portal.learning.models import Certificate

TEMPLATE = "learning/certificate_pdf.html"

# Rows per column of the competency table that still leave the footer clear on one A4 page:
# one column, then two side by side, then two in a smaller type. Past that the list is cut
# short and points at the verification page, which always shows every competency.
ROWS_PER_COLUMN = 6
ROWS_PER_COLUMN_COMPACT = 10

# An XML declaration or doctype is noise inside HTML: drop it before inlining the logo.
_SVG_PROLOGUE = re.compile(r"\A\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.IGNORECASE)


class DataOnlyFetcher(URLFetcher):
    """A URL fetcher that serves ``data:`` URLs and refuses everything else."""

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        if not url.lower().startswith("data:"):
            raise ValueError(f"certificates never fetch URLs, refused {url[:80]!r}")
        return super().fetch(url, headers)


def qr_svg(data: str) -> str:
    """An inline SVG of a QR code (error correction M) for ``data``, scalable by CSS."""
    # make_qr, not make: a short value would otherwise become a Micro QR code, which many
    # phone cameras cannot read.
    code = segno.make_qr(data, error="m", boost_error=False)
    return str(code.svg_inline(dark="#000", light="#fff", omitsize=True))


def certificate_pdf(certificate: Certificate, *, verify_url: str) -> bytes:
    """The certificate as a one-page A4 PDF, in the active language."""
    html = render_to_string(TEMPLATE, certificate_context(certificate, verify_url=verify_url))
    document = weasyprint.HTML(string=html, base_url=None, url_fetcher=DataOnlyFetcher())
    pdf: bytes = document.write_pdf()
    return pdf


def certificate_context(certificate: Certificate, *, verify_url: str) -> dict[str, Any]:
    """What the template shows, with every language map resolved to the active language."""
    branding = settings.PORTAL.branding
    return {
        "certificate": certificate,
        "course_title": certificate.course_title,
        **_competency_columns(
            [
                {
                    "name": localized(item.get("name") or {}),
                    "area": localized(item.get("area") or {}),
                    "level": item.get("level"),
                }
                for item in certificate.competencies
            ]
        ),
        "verify_url": verify_url,
        "qr": mark_safe(qr_svg(verify_url)),  # segno's own markup; the URL is only encoded
        "logo": _logo_svg(branding.logo),
        "brand": branding,
    }


def _competency_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The competencies split into at most two columns that fit the page, and what is left."""
    compact = len(rows) > 2 * ROWS_PER_COLUMN
    per_column = ROWS_PER_COLUMN_COMPACT if compact else ROWS_PER_COLUMN
    if len(rows) <= per_column:
        return {"competency_columns": [rows] if rows else [], "compact": False, "more": 0}
    shown = rows[: 2 * per_column]
    more = len(rows) - len(shown)
    if more:
        shown = rows[: 2 * per_column - 1]  # the last row becomes "and N more"
        more += 1
    half = (len(shown) + 1) // 2
    return {"competency_columns": [shown[:half], shown[half:]], "compact": compact, "more": more}


def _logo_svg(path: str) -> SafeString | None:
    """The tenant's SVG logo as markup, or None when it is not an existing ``.svg`` file."""
    logo = Path(path) if path else None
    if logo is None or logo.suffix.lower() != ".svg" or not logo.is_file():
        return None
    # The logo is set by whoever deploys the tenant, not by learners; anything it links to
    # is still refused by the fetcher.
    return mark_safe(_SVG_PROLOGUE.sub("", logo.read_text(encoding="utf-8")))
