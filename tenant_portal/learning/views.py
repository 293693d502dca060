"""Enrolment, lessons, quizzes, certificates, the passbook and department reports."""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Iterator
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from tenant_portal.accounts.models import Profile
from tenant_portal.catalogue.blocks import Lesson
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.competencies.models import Post, localized
from tenant_portal.learning import credentials
from tenant_portal.learning.certificates import certificate_pdf
from tenant_portal.learning.content import (
    CourseContent,
    current_content,
    learned_here,
    learning_url,
)
from tenant_portal.learning.models import Certificate, Enrolment, ImportedCredential
from tenant_portal.learning.passbook import passbook
from tenant_portal.learning.path import department_gaps, gap_for, levels_reached
from tenant_portal.learning.progress import (
    AnswerError,
    AttemptRefused,
    find_lesson,
    mark_done,
    parse_answers,
    submit_quiz,
)
from tenant_portal.xapi.selectors import THRESHOLD


def learner(request: HttpRequest) -> User:
    """The signed-in user of a ``login_required`` view."""
    return cast(User, request.user)


def _course(course: uuid.UUID) -> tuple[CatalogueEntry, CourseContent]:
    """The course's catalogue row and its current content (``learning.content``): 404 for a
    course unknown here, without content to learn, or taken on its origin's portal (link
    only). A withdrawn course is still found: its learners may finish it."""
    entry = get_object_or_404(CatalogueEntry, uuid=course)
    content = current_content(entry.uuid)
    if content is None or not content.lessons or not learned_here(entry):
        raise Http404
    return entry, content


def _back(entry: CatalogueEntry, anchor: str = "") -> HttpResponseRedirect:
    url = learning_url(entry)
    return redirect(f"{url}#{anchor}" if anchor else url)


def _refuse(request: HttpRequest, entry: CatalogueEntry, message: str, status: int) -> HttpResponse:
    return TemplateResponse(
        request,
        "learning/refused.html",
        {"message": message, "course_url": learning_url(entry), "course_title": entry.title},
        status=status,
    )


@require_POST
@login_required
def enrol(request: HttpRequest, course: uuid.UUID) -> HttpResponse:
    entry, _content = _course(course)
    if entry.retired and not Enrolment.objects.filter(user=learner(request), entry=entry):
        message = _("This course was withdrawn by its provider: it takes no new enrolments.")
        return _refuse(request, entry, message, 409)
    Enrolment.objects.get_or_create(user=learner(request), entry=entry)
    return _back(entry, "lessons")


class _Refused(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _lesson(
    request: HttpRequest, course: uuid.UUID, lesson: str
) -> tuple[CatalogueEntry, CourseContent, Enrolment, Lesson]:
    """The course, its content, the learner's enrolment and the lesson a learning POST names:
    404 for an unknown course or lesson, a 403 page (as :class:`_Refused`) without an
    enrolment."""
    entry, content = _course(course)
    enrolment = Enrolment.objects.filter(user=learner(request), entry=entry).first()
    if enrolment is None:
        raise _Refused(_refuse(request, entry, _("Enrol in the course first."), 403))
    try:
        return entry, content, enrolment, find_lesson(content, lesson)
    except LookupError:
        raise Http404 from None


@require_POST
@login_required
def lesson_done(request: HttpRequest, course: uuid.UUID, lesson: str) -> HttpResponse:
    try:
        entry, content, enrolment, found = _lesson(request, course, lesson)
    except _Refused as refused:
        return refused.response
    if found.kind == "quiz":
        return _refuse(request, entry, _("A quiz is done by passing it."), 400)
    if mark_done(enrolment, content, found) is not None:
        messages.success(request, _("You have completed the course."))
    return _back(entry, f"lesson-{lesson}")


@require_POST
@login_required
def quiz(request: HttpRequest, course: uuid.UUID, lesson: str) -> HttpResponse:
    try:
        entry, content, enrolment, found = _lesson(request, course, lesson)
    except _Refused as refused:
        return refused.response
    if found.kind != "quiz":
        raise Http404
    try:
        attempt = submit_quiz(enrolment, content, found, parse_answers(found, request.POST))
    except AnswerError as error:
        return _refuse(request, entry, _("Your answers were not recorded: %s") % error, 400)
    except AttemptRefused as error:
        return _refuse(request, entry, str(error), 409)
    if attempt.passed:
        messages.success(request, _("You passed with %(score)d%%.") % {"score": attempt.score})
    else:
        messages.warning(
            request,
            _("You scored %(score)d%%; the pass mark is %(mark)d%%.")
            % {"score": attempt.score, "mark": int(found.value["pass_mark"])},
        )
    enrolment.refresh_from_db()
    if enrolment.completed:
        messages.success(request, _("You have completed the course."))
    return _back(entry, f"lesson-{lesson}")


def printable(text: str) -> str:
    """``text`` without control characters, lone surrogates or other unprintable ones."""
    return "".join(ch for ch in text if ch.isprintable() or ch.isspace())


@never_cache
def verify_certificate(request: HttpRequest, certificate: str) -> HttpResponse:
    """Public: confirms a certificate id and shows what the certificate itself shows."""
    try:
        found = Certificate.objects.filter(id=uuid.UUID(certificate)).first()
    except ValueError:
        found = None
    response = TemplateResponse(
        request,
        "learning/verify.html",
        # The page names what was asked; control characters (and anything not printable) are
        # dropped first, so the echo can neither break the page nor smuggle a byte through.
        {"certificate": found, "asked": printable(certificate)[:64]},
        status=200 if found else 404,
    )
    response["X-Robots-Tag"] = "noindex"
    return response


def verify_url(certificate: Certificate) -> str:
    """The address printed on the certificate: the portal's configured URL, never the Host
    header of whoever asked for the PDF."""
    path = reverse("verify_certificate", args=[str(certificate.id)])
    return f"{settings.PORTAL.portal_url}{path}"


@login_required
def download_certificate(request: HttpRequest, certificate: uuid.UUID) -> HttpResponse:
    found = get_object_or_404(Certificate, id=certificate, enrolment__user=learner(request))
    pdf = certificate_pdf(found, verify_url=verify_url(found))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="certificate-{found.id}.pdf"'
    return response


@login_required
def download_credential(request: HttpRequest, certificate: uuid.UUID) -> HttpResponse:
    """The certificate's Open Badges 3.0 credential (VC-JOSE), for the officer to carry."""
    found = get_object_or_404(Certificate, id=certificate, enrolment__user=learner(request))
    try:
        credential = credentials.credential_for(found)
    except credentials.NotVerified:
        messages.error(
            request,
            _("A credential names your verified e-mail address; yours is not verified yet."),
        )
        return redirect("passbook")
    response = HttpResponse(credential.jws, content_type=credentials.CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="credential-{credential.uuid}.jwt"'
    return response


def _uploaded(request: HttpRequest) -> str:
    """The credential sent as the file or the form field ``credential`` (its first 64 KB and
    one byte more, so that an oversized one is refused as such)."""
    upload = request.FILES.get("credential")
    raw = upload.read(credentials.MAX_CREDENTIAL + 1) if upload else None
    if raw is None:
        return str(request.POST.get("credential", ""))[: credentials.MAX_CREDENTIAL + 1]
    try:
        return bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        return "\x00"  # not a compact JWS: refused as malformed


@never_cache
def verify_credential(request: HttpRequest) -> HttpResponse:
    """Public: says whether an uploaded credential is valid here, and why not."""
    context: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        try:
            found = credentials.verify(_uploaded(request))
            achievement = found.payload["credentialSubject"]["achievement"]
            context["valid"] = {
                "issuer": found.issuer_name,
                "issuer_id": found.issuer_id,
                "course": str(achievement.get("name", "")),
                "course_iri": str(achievement.get("id", "")),
                "issued": found.issued,
            }
        except credentials.CredentialError as error:
            context["refused"] = str(error)
            status = 422
    elif request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    response = TemplateResponse(request, "learning/verify_credential.html", context, status=status)
    response["X-Robots-Tag"] = "noindex"
    return response


@require_POST
@login_required
def import_credential(request: HttpRequest) -> HttpResponse:
    """Add a credential another member of the federation issued to this officer."""
    try:
        row = credentials.import_credential(learner(request), _uploaded(request))
    except credentials.CredentialError as error:
        messages.error(request, _("The credential was not added: %s") % error)
        return redirect("passbook")
    messages.success(
        request,
        _("Added to your passbook: %(course)s, from %(issuer)s.")
        % {"course": row.course_title, "issuer": row.issuer_name},
    )
    return redirect("passbook")


@require_GET
def credential_status_list(request: HttpRequest, number: int) -> HttpResponse:
    """Public: the Bitstring Status List credential ``number`` (revocations), signed."""
    if number > 10**6:
        raise Http404
    response = HttpResponse(
        credentials.status_list_token(number), content_type=credentials.CONTENT_TYPE
    )
    response["Cache-Control"] = "public, max-age=60"
    return response


@never_cache
@login_required
def passbook_view(request: HttpRequest) -> HttpResponse:
    profile = Profile.objects.filter(user=learner(request)).first()
    if request.method == "POST" and profile is not None:
        # A name holds no control characters: PostgreSQL refuses NUL, and none belongs on a
        # certificate.
        profile.name_local = " ".join(printable(request.POST.get("name_local", "")).split())[:300]
        profile.save(update_fields=["name_local"])
        messages.success(request, _("Your name for certificates is saved."))
        return redirect("passbook")
    certificates = list(
        Certificate.objects.filter(enrolment__user=learner(request)).order_by("-issued")
    )
    imported = list(ImportedCredential.objects.filter(user=learner(request)))
    enrolments = list(
        Enrolment.objects.filter(user=learner(request), completed__isnull=True)
        .select_related("entry")
        .order_by("-enrolled")
    )
    areas = passbook([*certificates, *(i for i in imported if i.revoked is None)])
    posts = {post.code: post for post in Post.objects.filter(retired=False)}
    language = (get_language() or "en").split("-")[0]
    return TemplateResponse(
        request,
        "learning/passbook.html",
        {
            "areas": areas,
            "gap": gap_for(profile, posts, levels_reached(areas), language),
            "posts": sorted(posts.values(), key=lambda post: str(post)),
            "certificates": certificates,
            "imported": imported,
            "email_verified": bool(profile and profile.email_verified),
            "in_progress": enrolments,
            "profile": profile,
        },
    )


_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")


def _known_post(code: str) -> bool:
    """Whether ``code`` is empty (no post) or a post officers may hold. A post's code is a
    slug: anything else (a NUL byte PostgreSQL refuses, say) is no post."""
    return not code or (
        _SLUG.fullmatch(code) is not None and Post.objects.filter(code=code, retired=False).exists()
    )


def _no_such_post() -> HttpResponse:
    return HttpResponse(
        _("No such post: choose one from the list."), status=400, content_type="text/plain"
    )


@require_POST
@login_required
def choose_post(request: HttpRequest) -> HttpResponse:
    """The officer's own choice of post (the token's claim and a department administrator's
    assignment come first); an empty choice clears it."""
    code = str(request.POST.get("post", ""))
    profile = Profile.objects.filter(user=learner(request)).first()
    if profile is None:
        raise PermissionDenied(_("Only officers who signed in through the realm have a post."))
    if not _known_post(code):
        return _no_such_post()
    profile.post_chosen = code
    profile.save(update_fields=["post_chosen"])
    messages.success(request, _("Your post is saved."))
    return redirect("passbook")


# --- department (MDO) reports ---------------------------------------------------------------


def _department_of(request: HttpRequest) -> str:
    """The department whose reports the user may see, or PermissionDenied's 403."""
    user = learner(request)
    profile = Profile.objects.filter(user=user).first()
    if (
        not user.has_perm("accounts.view_department_reports")
        or not profile
        or not profile.department
    ):
        raise PermissionDenied(_("Department reports are for department administrators."))
    return profile.department


def _report_rows(department: str) -> QuerySet[Enrolment]:
    return (
        Enrolment.objects.filter(user__profile__department=department)
        .select_related("user", "entry", "certificate")
        .order_by("-enrolled", "pk")
    )


@never_cache
@login_required
def department_report(request: HttpRequest, department: str | None = None) -> HttpResponse:
    own = _department_of(request)
    if department is None:
        return redirect("department_report", department=own)
    if department != own:
        raise PermissionDenied(_("This is another department's report."))
    rows = _report_rows(own)
    page = Paginator(rows, per_page=50).get_page(request.GET.get("page"))
    return TemplateResponse(
        request,
        "learning/report.html",
        {
            "department": own,
            "department_name": settings.PORTAL.departments.get(own, own),
            "results": page,
            "officers": Profile.objects.filter(department=own)
            .select_related("user")
            .order_by("user__last_name", "user__first_name", "pk"),
            "posts": sorted(Post.objects.filter(retired=False), key=str),
            "enrolled": rows.count(),
            "completed": rows.filter(completed__isnull=False).count(),
            "post_gaps": department_gaps(own, (get_language() or "en").split("-")[0]),
            "threshold": THRESHOLD,
        },
    )


_PROFILE_ID = re.compile(r"[0-9]{1,9}")


@require_POST
@login_required
def assign_post(request: HttpRequest, department: str) -> HttpResponse:
    """A department administrator assigns a post to an officer of their own department; the
    token's post claim, when the directory sets one, still comes first."""
    own = _department_of(request)
    if department != own:
        raise PermissionDenied(_("This is another department's report."))
    officer = str(request.POST.get("officer", ""))
    code = str(request.POST.get("post", ""))
    profile = (
        Profile.objects.filter(pk=int(officer), department=own).first()
        if _PROFILE_ID.fullmatch(officer)
        else None
    )
    if profile is None:
        return HttpResponse(
            _("No such officer in your department."), status=400, content_type="text/plain"
        )
    if not _known_post(code):
        return _no_such_post()
    profile.post_assigned = code
    profile.save(update_fields=["post_assigned"])
    messages.success(request, _("The post is assigned."))
    return redirect("department_report", department=own)


class _Echo:
    def write(self, value: str) -> str:
        return value


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) in a
# learner's name would be a live link in the administrator's sheet); OWASP's "CSV injection"
# advice is to make such a cell text with a leading apostrophe.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _csv_lines(rows: QuerySet[Enrolment], language: str | None) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(
        ["learner", "email", "course", "course_iri", "enrolled", "completed", "certificate"]
    )
    for row in rows.iterator(chunk_size=500):
        certificate = getattr(row, "certificate", None)
        cells = [
            row.user.get_full_name() or row.user.get_username(),
            row.user.email,
            localized(row.entry.name, language),
            row.entry.iri,
            row.enrolled.isoformat(timespec="seconds"),
            row.completed.isoformat(timespec="seconds") if row.completed else "",
            str(certificate.id) if certificate else "",
        ]
        yield writer.writerow([_cell(value) for value in cells])


@never_cache
@login_required
def department_report_csv(request: HttpRequest, department: str) -> Any:
    own = _department_of(request)
    if department != own:
        raise PermissionDenied(_("This is another department's report."))
    response = StreamingHttpResponse(
        _csv_lines(_report_rows(own), get_language()), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{own}-learning-report.csv"'
    return response
