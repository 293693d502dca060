"""The competency passbook: what an officer has built up, area → theme → sub-theme.

It is read from the certificates alone (each keeps a snapshot of the competencies it
certifies), so it costs one query however many courses there are, and it still tells the
truth after a course or the framework changes. Credentials other instances issued to the
officer and they imported count too, marked with their issuer, unless since revoked. Per
sub-theme it shows the highest level reached and the day it was first reached.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from tenant_portal.competencies.models import localized
from tenant_portal.learning.models import Certificate, ImportedCredential


@dataclass
class Reached:
    iri: str
    name: str
    level: int
    on: datetime
    course: str
    issuer: str = ""  # another instance's name, for a credential imported from it


@dataclass
class ThemeEntry:
    name: str
    sub_themes: list[Reached] = field(default_factory=list)


@dataclass
class AreaEntry:
    name: str
    themes: dict[str, ThemeEntry] = field(default_factory=dict)


def passbook(certificates: Iterable[Certificate | ImportedCredential]) -> list[AreaEntry]:
    """The passbook of certificates issued here and credentials imported from elsewhere."""
    best: dict[str, tuple[Reached, str, str]] = {}
    for certificate in sorted(certificates, key=lambda c: c.issued):
        for term in certificate.competencies:
            seen = best.get(term["iri"])
            if seen is None or term["level"] > seen[0].level:
                reached = Reached(
                    iri=term["iri"],
                    name=localized(term["name"]),
                    level=int(term["level"]),
                    on=certificate.issued,
                    course=certificate.course_title,
                    issuer=getattr(certificate, "issuer_name", ""),
                )
                best[term["iri"]] = (reached, localized(term["area"]), localized(term["theme"]))
    areas: dict[str, AreaEntry] = {}
    for reached, area, theme in sorted(best.values(), key=lambda t: (t[1], t[2], t[0].name)):
        entry = areas.setdefault(area, AreaEntry(area))
        entry.themes.setdefault(theme, ThemeEntry(theme)).sub_themes.append(reached)
    return list(areas.values())
