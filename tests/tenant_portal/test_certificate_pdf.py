"""The certificate PDF: shaped Indic and Urdu text, one page, a true QR code, nothing fetched.

No database: the certificates are unsaved model instances.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from pathlib import Path
from typing import Any

import pypdf
import pytest
import segno
from django.template.loader import render_to_string
from django.utils import translation
from weasyprint.urls import URLFetcher

from tenant_portal.learning.certificates import (
    TEMPLATE,
    DataOnlyFetcher,
    certificate_context,
    certificate_pdf,
    qr_svg,
)
from tenant_portal.learning.models import Certificate
from tests.tenant_portal.conftest import set_portal

CERTIFICATE_ID = uuid.UUID("3f2a8c1e-5b7d-4e9a-8c6f-1d2e3f4a5b6c")
VERIFY_URL = f"https://up.karmayogi.example/certificates/{CERTIFICATE_ID}/"
HINDI_NAME = "क्षितिज श्रीवास्तव"  # a conjunct (क्ष) and pre-base vowel signs (ि)
URDU_NAME = "عائشہ خان"
COURSE = {
    "en": "Foundations of Public Health Administration",
    "hi": "सार्वजनिक स्वास्थ्य प्रशासन की नींव",
    "ur": "صحت عامہ کے انتظام کی بنیادیں",
}


def make_certificate(**overrides: Any) -> Certificate:
    fields: dict[str, Any] = {
        "id": CERTIFICATE_ID,
        "learner_name": "Kshitij Srivastava",
        "learner_name_local": HINDI_NAME,
        "course_name": COURSE,
        "course_iri": "https://up.karmayogi.example/courses/public-health",
        "competencies": [
            {
                "iri": "https://example.org/kcm/behavioural/empathy",
                "name": {"en": "Empathy", "hi": "सहानुभूति"},
                "area": {"en": "Behavioural", "hi": "व्यवहारिक"},
                "level": 3,
            }
        ],
        "issuer": "Uttar Pradesh Karmayogi",
        "issued": dt.datetime(2025, 3, 14, 10, 0, tzinfo=dt.UTC),
        **overrides,
    }
    return Certificate(**fields)


def render(certificate: Certificate, language: str) -> pypdf.PdfReader:
    with translation.override(language):
        return pypdf.PdfReader(io.BytesIO(certificate_pdf(certificate, verify_url=VERIFY_URL)))


def text_of(reader: pypdf.PdfReader) -> str:
    """The text of every page, whitespace collapsed so line breaks do not matter."""
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def embedded_fonts(reader: pypdf.PdfReader) -> dict[str, set[str]]:
    """Embedded font name (subset prefix dropped) → the texts its glyphs stand for."""
    fonts: dict[str, set[str]] = {}
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            name = str(font["/BaseFont"]).lstrip("/").split("+", 1)[-1]
            cmap = font["/ToUnicode"].get_object().get_data().decode("latin-1")
            fonts.setdefault(name, set()).update(
                bytes.fromhex(target).decode("utf-16-be")
                for target in re.findall(r"<[0-9a-fA-F]+>\s*<([0-9a-fA-F]*)>", cmap)
            )
    return fonts


@pytest.fixture(scope="module")
def hindi_pdf() -> pypdf.PdfReader:
    return render(make_certificate(), "hi")


def test_latin_values_id_and_verification_url_are_in_the_text(hindi_pdf: pypdf.PdfReader) -> None:
    text = text_of(hindi_pdf)
    assert "Kshitij Srivastava" in text
    assert VERIFY_URL in text
    assert str(CERTIFICATE_ID) in text


def test_the_metadata_carries_the_devanagari_name_and_title_exactly(
    hindi_pdf: pypdf.PdfReader,
) -> None:
    # The page's text layer can garble Devanagari clusters on copy and search (WeasyPrint
    # gives a glyph one text for the whole file, see docs/portal.md), so the document's
    # title carries the names exactly as typed; PDF readers, indexers and screen readers
    # read it.
    metadata = hindi_pdf.metadata
    assert metadata is not None
    assert HINDI_NAME in str(metadata.title) and COURSE["hi"] in str(metadata.title)
    assert str(CERTIFICATE_ID) in str(metadata.get("/Keywords"))


def test_devanagari_is_shaped_with_an_embedded_noto_sans_devanagari(
    hindi_pdf: pypdf.PdfReader,
) -> None:
    fonts = embedded_fonts(hindi_pdf)
    assert "Noto-Sans-Devanagari" in fonts, sorted(fonts)
    glyph_texts = fonts["Noto-Sans-Devanagari"]
    # HarfBuzz replaced क्ष and श्र by conjunct glyphs; without shaping every glyph would
    # stand for one character.
    assert any(t.startswith("क्ष") for t in glyph_texts), glyph_texts
    assert any(t.startswith("श्र") for t in glyph_texts), glyph_texts


def test_course_title_follows_the_active_language() -> None:
    english = text_of(render(make_certificate(learner_name_local=""), "en"))
    assert COURSE["en"] in english
    assert "सार्वजनिक" not in english

    hindi = text_of(render(make_certificate(learner_name_local=""), "hi"))
    assert COURSE["en"] not in hindi
    with translation.override("hi"):
        html = render_to_string(TEMPLATE, certificate_context(make_certificate(), verify_url=""))
    assert COURSE["hi"] in html


def test_urdu_is_right_to_left_and_set_in_an_arabic_script_font() -> None:
    certificate = make_certificate(learner_name="Ayesha Khan", learner_name_local=URDU_NAME)
    reader = render(certificate, "ur")
    text = text_of(reader)
    assert URDU_NAME in text
    assert COURSE["ur"] in text
    assert any("Arabic" in name or "Urdu" in name for name in embedded_fonts(reader))
    with translation.override("ur"):
        html = render_to_string(TEMPLATE, certificate_context(certificate, verify_url=""))
    assert '<html lang="ur" dir="rtl">' in html


def test_many_competencies_and_long_names_still_make_one_page() -> None:
    competencies = [
        {
            "iri": f"https://example.org/kcm/{n}",
            "name": {"en": f"Competency number {n} with a fairly long name"},
            "area": {"en": "Functional"},
            "level": n % 5 + 1,
        }
        for n in range(30)
    ]
    certificate = make_certificate(
        learner_name="Kshitij Venkata Narasimha Srivastava-Raghunathan",
        course_name={"en": "Foundations of Public Health Administration " * 3},
        competencies=competencies,
    )
    reader = render(certificate, "en")
    assert len(reader.pages) == 1
    text = text_of(reader)
    assert "Level 1" in text
    assert "and 11 more competencies" in text


def test_the_usual_certificate_is_one_page(hindi_pdf: pypdf.PdfReader) -> None:
    assert len(hindi_pdf.pages) == 1


def test_markup_in_a_learner_name_is_printed_not_run_or_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched = spy_on_fetching(monkeypatch)
    certificate = make_certificate(
        learner_name="<script>alert(1)</script>",
        learner_name_local='<img src="http://127.0.0.1:9/x.png">',
    )
    text = text_of(render(certificate, "en"))
    assert "<script>alert(1)</script>" in text
    assert '<img src="http://127.0.0.1:9/x.png">' in text
    assert fetched == []


def test_links_in_the_logo_are_refused(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text(
        '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 40">'
        '<text x="0" y="30">LOGO-MARK</text>'
        '<image href="http://127.0.0.1:9/track.png" width="9" height="9"/>'
        '<image href="file:///etc/hostname" width="9" height="9"/></svg>',
        encoding="utf-8",
    )
    set_portal(settings, branding={"logo": str(logo)})
    refused = spy_on_refusals(monkeypatch)
    fetched = spy_on_fetching(monkeypatch)
    text = text_of(render(make_certificate(), "en"))
    assert "LOGO-MARK" in text  # the logo itself is inlined
    assert refused == ["http://127.0.0.1:9/track.png", "file:///etc/hostname"]
    assert fetched == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/", "https://example.org/a.png", "file:///etc/passwd", "ftp://x/"]
)
def test_the_fetcher_refuses_everything_but_data_urls(url: str) -> None:
    with pytest.raises(ValueError, match="never fetch"):
        DataOnlyFetcher()(url)


def test_the_fetcher_serves_data_urls() -> None:
    assert DataOnlyFetcher()("data:text/plain,hello").read() == b"hello"


def test_qr_svg_is_a_scalable_inline_svg() -> None:
    svg = qr_svg(VERIFY_URL)
    assert svg.startswith("<svg ")
    opening = svg[: svg.index(">")]
    assert re.search(r'viewBox="0 0 \d+ \d+"', opening)
    assert "width=" not in opening and "height=" not in opening
    assert "<?xml" not in svg
    assert 'stroke="#000"' in svg


def test_qr_svg_draws_the_code_for_its_data() -> None:
    expected = segno.make_qr(VERIFY_URL, error="m", boost_error=False)
    assert expected.error == "M"
    assert dark_modules(qr_svg(VERIFY_URL)) == dark_modules_of(expected)
    other = segno.make_qr(VERIFY_URL + "x", error="m", boost_error=False)
    assert dark_modules(qr_svg(VERIFY_URL)) != dark_modules_of(other)


def test_a_short_value_still_makes_a_full_qr_code_not_a_micro_one() -> None:
    assert dark_modules(qr_svg("1")) == dark_modules_of(
        segno.make_qr("1", error="m", boost_error=False)
    )


def dark_modules(svg: str) -> set[tuple[int, int]]:
    """The dark (row, column) modules drawn by segno's path, quiet zone removed."""
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg)[1])  # type: ignore[index]
    path = re.search(r'<path class="qrline"[^>]* d="([^"]+)"', svg)[1]  # type: ignore[index]
    x = y = 0.0
    cells: set[tuple[int, int]] = set()
    for command, args in re.findall(r"([A-Za-z])([^A-Za-z]*)", path):
        numbers = [float(n) for n in args.replace(",", " ").split()]
        if command == "M":
            x, y = numbers
        elif command == "m":
            x, y = x + numbers[0], y + numbers[1]
        elif command == "h":
            cells.update((int(y), int(x) + i) for i in range(int(numbers[0])))
            x += numbers[0]
        else:
            raise AssertionError(f"unexpected path command {command!r}")
    # The finder patterns touch the code's edges, so the first dark row is the quiet zone's width.
    border = min(r for r, _ in cells)
    assert size == 2 * border + max(r for r, _ in cells) + 1 - border
    return {(r - border, c - border) for r, c in cells}


def dark_modules_of(code: segno.QRCode) -> set[tuple[int, int]]:
    return {(r, c) for r, row in enumerate(code.matrix) for c, dark in enumerate(row) if dark}


def spy_on_fetching(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every non-data URL that reaches WeasyPrint's real fetching."""
    fetched: list[str] = []
    real = URLFetcher.fetch

    def fetch(self: URLFetcher, url: str, headers: Any = None) -> Any:
        if not url.startswith("data:"):
            fetched.append(url)
        return real(self, url, headers)

    monkeypatch.setattr(URLFetcher, "fetch", fetch)
    return fetched


def spy_on_refusals(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every URL the certificate's fetcher was asked for and refused."""
    refused: list[str] = []
    real = DataOnlyFetcher.fetch

    def fetch(self: DataOnlyFetcher, url: str, headers: Any = None) -> Any:
        try:
            return real(self, url, headers)
        except ValueError:
            refused.append(url)
            raise

    monkeypatch.setattr(DataOnlyFetcher, "fetch", fetch)
    return refused
