"""What the portal benchmark puts in the database, through the portal's own models.

Imported by ``scripts/bench/portal.py`` after ``django.setup()`` with the portal's settings:
the catalogue records of other tenants, in bulk as federation writes them; a signed-in learner
and their session; a course published again under a new title.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.db import connection, connections, transaction
from django.utils import timezone

from tenant_portal.accounts.models import Profile
from tenant_portal.accounts.signals import EDITS_SESSION_KEY, REPORTS_SESSION_KEY
from tenant_portal.catalogue.models import (
    CatalogueEntry,
    CoursePage,
    EntryCompetency,
    EntryLanguage,
)
from tenant_portal.catalogue.services import search_text, term_snapshot
from tenant_portal.competencies.models import SubTheme
from tenant_portal.core.page_cache import bump_generation
from tenant_portal.learning.models import Enrolment

BATCH = 1000
SIGN_IN_BACKEND = "tenant_portal.accounts.backends.KeycloakBackend"

# (code, name, domain, weight): the tenants whose courses reach this one.
ORIGINS = [
    ("karmayogi-bharat", "Karmayogi Bharat", "learn.karmayogi.example", 6),
    ("rajasthan", "Rajasthan Karmayogi", "learn.rajasthan.example", 3),
    ("mauritius", "Mauritius Public Service Learning", "learn.civilservice-mu.example", 1),
]
PROVIDERS = {
    "karmayogi-bharat": [
        "iGOT Karmayogi",
        "Lal Bahadur Shastri National Academy of Administration",
        "Institute of Secretariat Training and Management",
        "National Institute of Financial Management",
        "National Institute of Disaster Management",
        "National e-Governance Division",
        "National Informatics Centre",
        "Indian Institute of Public Administration",
        "National Institute of Rural Development and Panchayati Raj",
        "Centre for Development of Advanced Computing",
        "Ministry of Health and Family Welfare",
        "Department of Personnel and Training",
    ],
    "rajasthan": [
        "HCM Rajasthan State Institute of Public Administration",
        "Rajasthan Department of Information Technology",
        "Rajasthan Rural Livelihoods Mission",
        "Rajasthan Finance Department",
    ],
    "mauritius": ["Civil Service College Mauritius", "Ministry of Public Service"],
}
TOPICS = [
    ("Public Procurement", "सार्वजनिक खरीद"),
    ("Right to Information", "सूचना का अधिकार"),
    ("Cyber Security", "साइबर सुरक्षा"),
    ("Financial Management", "वित्तीय प्रबंधन"),
    ("Disaster Management", "आपदा प्रबंधन"),
    ("Gender Sensitisation", "लैंगिक संवेदनशीलता"),
    ("e-Office", "ई-ऑफ़िस"),
    ("Project Management", "परियोजना प्रबंधन"),
    ("Data Analytics", "डेटा विश्लेषण"),
    ("Ethics in Governance", "शासन में नैतिकता"),
    ("Citizen-centric Service Delivery", "नागरिक-केंद्रित सेवा वितरण"),
    ("Stress Management", "तनाव प्रबंधन"),
    ("Public Health Administration", "जन स्वास्थ्य प्रशासन"),
    ("Land Records", "भू-अभिलेख"),
    ("Office Procedure", "कार्यालय प्रक्रिया"),
    ("Grievance Redressal", "शिकायत निवारण"),
    ("Budgeting and Accounts", "बजट और लेखा"),
    ("Team Leadership", "टीम नेतृत्व"),
    ("Digital Payments", "डिजिटल भुगतान"),
    ("Rural Development Schemes", "ग्रामीण विकास योजनाएँ"),
]
FORMS = [
    ("Introduction to {}", "{} का परिचय"),
    ("{} in practice", "व्यवहार में {}"),
    ("Advanced {}", "उन्नत {}"),
    ("Case studies in {}", "{} के केस अध्ययन"),
    ("{}: rules and procedures", "{}: नियम और प्रक्रियाएँ"),
]
AUDIENCES = [
    ("district officers", "ज़िला अधिकारी"),
    ("block officers", "प्रखंड अधिकारी"),
    ("panchayat secretaries", "पंचायत सचिव"),
    ("section officers", "अनुभाग अधिकारी"),
    ("frontline staff", "अग्रिम पंक्ति के कर्मचारी"),
    ("new recruits", "नव नियुक्त कर्मचारी"),
]
LANGUAGE_SETS = [(["hi", "en"], 7), (["en"], 2), (["hi"], 1)]
DURATIONS = [30, 45, 60, 90, 120, 180, 240, 360]


@dataclass(frozen=True)
class Course:
    """One of the tenant's own course pages, as visitors reach it."""

    page_id: int
    path: str
    title: str


@dataclass(frozen=True)
class _Record:
    entry: CatalogueEntry
    languages: list[str]
    levels: list[tuple[int, int]]  # (sub-theme id, level)


def _record(rng: random.Random, sub_themes: list[SubTheme], now: datetime) -> _Record:
    code, origin_name, domain, _weight = rng.choices(ORIGINS, [o[3] for o in ORIGINS])[0]
    topic_en, topic_hi = rng.choice(TOPICS)
    form_en, form_hi = rng.choice(FORMS)
    audience_en, audience_hi = rng.choice(AUDIENCES)
    minutes = rng.choice(DURATIONS)
    name = {
        "en": f"{form_en.format(topic_en)} for {audience_en}",
        "hi": f"{audience_hi} के लिए {form_hi.format(topic_hi)}",
    }
    description = {
        "en": (
            f"A {minutes}-minute course on {topic_en.lower()} for {audience_en}, with worked "
            "examples from state departments and a short assessment at the end."
        ),
        "hi": (
            f"{audience_hi} के लिए {topic_hi} पर {minutes} मिनट का पाठ्यक्रम, राज्य विभागों के "
            "उदाहरणों और अंत में एक छोटे आकलन के साथ।"
        ),
    }
    provider = rng.choice(PROVIDERS[code])
    languages = rng.choices([s[0] for s in LANGUAGE_SETS], [s[1] for s in LANGUAGE_SETS])[0]
    levels = {s.pk: (s, rng.randint(1, 5)) for s in rng.sample(sub_themes, rng.randint(1, 3))}
    competencies = [term_snapshot(s, level) for s, level in levels.values()]
    course = uuid.UUID(int=rng.getrandbits(128), version=4)
    entry = CatalogueEntry(
        uuid=course,
        iri=f"https://{domain}/courses/{course}",
        origin=code,
        origin_name=origin_name,
        provider=provider,
        name=name,
        description=description,
        languages=languages,
        duration_minutes=minutes,
        competencies=competencies,
        url=f"https://{domain}/courses/{course}/",
        version=rng.randint(1, 5),
        modified=now - timedelta(seconds=rng.randint(3600, 365 * 86400)),
        search_text=search_text(
            name.values(),
            description.values(),
            [provider],
            [text for c in competencies for text in c["name"].values()],
        ),
    )
    return _Record(entry, languages, [(s.pk, level) for s, level in levels.values()])


def add_catalogue_records(count: int, *, seed: int = 2026) -> None:
    """``count`` courses of other tenants, written as federation writes them: rows without a
    page, in batches, with their language and competency rows."""
    rng = random.Random(seed)
    sub_themes = list(SubTheme.objects.filter(retired=False).select_related("theme__area"))
    if not sub_themes:
        raise LookupError("no competency framework loaded (prepare_portal loads the sample)")
    now = timezone.now()
    for start in range(0, count, BATCH):
        records = [_record(rng, sub_themes, now) for _ in range(min(BATCH, count - start))]
        with transaction.atomic():
            # On PostgreSQL bulk_create fills in the new rows' ids.
            CatalogueEntry.objects.bulk_create([r.entry for r in records])
            EntryLanguage.objects.bulk_create(
                [EntryLanguage(entry=r.entry, code=code) for r in records for code in r.languages]
            )
            EntryCompetency.objects.bulk_create(
                [
                    EntryCompetency(entry=r.entry, sub_theme_id=sub_theme, level=level)
                    for r in records
                    for sub_theme, level in r.levels
                ]
            )
            bump_generation()
    # What autovacuum does within a minute of a bulk load, done now: the planner gets its
    # statistics (a running portal has them), and it does not run in the middle of the load.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def catalogue_size() -> int:
    return CatalogueEntry.objects.filter(retired=False, hidden=False).count()


def own_courses() -> list[Course]:
    """The tenant's course pages in its default language, in the order of the page tree."""
    pages = (
        CoursePage.objects.live()
        .filter(locale__language_code=settings.LANGUAGE_CODE)
        .order_by("path")
    )
    return [Course(page.pk, page.get_url(), page.title) for page in pages]


def signed_in_session(course: Course) -> tuple[str, str]:
    """A learner enrolled in ``course`` and a session signed in as them, as the sign-in
    callback leaves it; returns (its Cookie header, the name the page header shows)."""
    user = get_user_model().objects.create_user(
        username=f"bench-{uuid.uuid4().hex[:12]}",
        email="asha.kumari@bihar.example",
        first_name="Asha",
        last_name="Kumari",
    )
    Profile.objects.create(user=user, subject=str(uuid.uuid4()), department="education")
    Enrolment.objects.create(user=user, entry=CatalogueEntry.objects.get(page_id=course.page_id))
    session = import_module(settings.SESSION_ENGINE).SessionStore()  # the portal's own store
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = SIGN_IN_BACKEND
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    # What the sign-in decides once from the roles (accounts.signals): a learner's header has
    # no reports link and no editor's userbar.
    session[REPORTS_SESSION_KEY] = False
    session[EDITS_SESSION_KEY] = False
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}", user.get_full_name()


def publish_new_title(course: Course, title: str) -> None:
    """Publish ``course`` again under ``title``, as an editor would in the admin."""
    page = CoursePage.objects.get(pk=course.page_id)
    page.title = title
    page.save_revision().publish()


def close() -> None:
    connections.close_all()
