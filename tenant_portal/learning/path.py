"""Role-based learning: an officer's post, the gap to what it needs, and the path that closes it.

An officer's post comes from three sources, the first naming a known post (by code, or by its
name in any language) winning: the token's ``post`` claim (a Keycloak user attribute an HR
system or the state's directory sets), a department administrator's assignment, the officer's
own choice on *My learning*. A value that names no post is ignored with a log line.

The gap is each required competency whose level reached (the passbook) is below the level the
post needs. The path is the fewest catalogue courses, local or federated, that close every gap
a course can close: exact (a search over the sets of gaps, :func:`plan`) up to
:data:`EXACT_GAPS` gaps, greedy beyond. Among paths of equal length it prefers courses in the
officer's language, then the shorter total duration; it lists foundations first (the lowest
required level first).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.db.models import Prefetch

from tenant_portal.accounts.models import Profile
from tenant_portal.catalogue.models import EntryCompetency
from tenant_portal.competencies.models import Post, PostCompetency, localized
from tenant_portal.xapi.selectors import Figure, learners_cell, learners_total

logger = logging.getLogger(__name__)

EXACT_GAPS = 12  # 4,096 sets of gaps: the exact search stays well under a millisecond a course


@dataclass(frozen=True)
class Requirement:
    iri: str
    name: str
    required: int
    reached: int  # 0: not in the passbook

    @property
    def open(self) -> bool:
        return self.reached < self.required


@dataclass(frozen=True)
class Candidate:
    key: str
    title: str
    url: str
    languages: tuple[str, ...]
    duration: int
    teaches: Mapping[str, int]  # competency IRI → level


@dataclass(frozen=True)
class Step:
    course: Candidate
    closes: tuple[Requirement, ...]
    in_language: bool


@dataclass
class Gap:
    """What *My learning* shows for an officer's post."""

    post: Post | None = None
    source: str = ""  # "token", "department" or "choice"
    requirements: list[Requirement] = field(default_factory=list)
    path: list[Step] = field(default_factory=list)
    uncovered: list[Requirement] = field(default_factory=list)  # no course closes them


def closes(course: Candidate, requirement: Requirement) -> bool:
    return course.teaches.get(requirement.iri, 0) >= requirement.required


def plan(
    requirements: Sequence[Requirement], candidates: Iterable[Candidate], language: str
) -> tuple[list[Step], list[Requirement]]:
    """The fewest ``candidates`` that close every open requirement some candidate closes, in
    learning order, and the open requirements none closes."""
    gaps = [r for r in requirements if r.open]
    best: dict[int, tuple[tuple[int, int, str], Candidate]] = {}  # one course per set of gaps
    for course in candidates:
        mask = sum(1 << i for i, gap in enumerate(gaps) if closes(course, gap))
        if not mask:
            continue
        rank = (int(language not in course.languages), course.duration, course.key)
        if mask not in best or rank < best[mask][0]:
            best[mask] = (rank, course)
    reachable = 0
    for mask in best:
        reachable |= mask
    uncovered = [gap for i, gap in enumerate(gaps) if not reachable >> i & 1]
    chosen = _exact(best, reachable) if len(gaps) <= EXACT_GAPS else _greedy(best, reachable)
    steps = [
        Step(
            course=course,
            closes=tuple(gap for gap in gaps if closes(course, gap)),
            in_language=language in course.languages,
        )
        for course in chosen
    ]
    order = {gap.iri: i for i, gap in enumerate(gaps)}
    steps.sort(
        key=lambda s: (min(g.required for g in s.closes), min(order[g.iri] for g in s.closes))
    )
    return steps, uncovered


def _exact(best: dict[int, tuple[tuple[int, int, str], Candidate]], goal: int) -> list[Candidate]:
    """Fewest courses, then fewest not in the language, then shortest: every step only adds
    gaps, so the sets of gaps in increasing number order are a topological order."""
    costs: dict[int, tuple[int, int, int, tuple[str, ...]]] = {0: (0, 0, 0, ())}
    picks: dict[int, tuple[Candidate, ...]] = {0: ()}
    options = sorted(best.items())
    for state in range(goal + 1):
        if state not in costs or state & ~goal:
            continue
        count, foreign, minutes, keys = costs[state]
        for mask, (rank, course) in options:
            after = state | mask
            if after == state:
                continue
            cost = (count + 1, foreign + rank[0], minutes + rank[1], (*keys, course.key))
            if after not in costs or cost < costs[after]:
                costs[after] = cost
                picks[after] = (*picks[state], course)
    return list(picks[goal])


def _greedy(best: dict[int, tuple[tuple[int, int, str], Candidate]], goal: int) -> list[Candidate]:
    """The course closing the most open gaps, again and again (within a log factor)."""
    state, chosen = 0, []
    while state != goal:
        mask, (_rank, course) = max(
            best.items(),
            key=lambda item: (bin(item[0] & ~state).count("1"), [-x for x in item[1][0][:2]]),
        )
        state |= mask
        chosen.append(course)
    return chosen


def post_of(
    profile: Profile | None, posts: Mapping[str, Post], *, quiet: bool = False
) -> tuple[Post | None, str]:
    """The officer's post and its source; a code naming no known post is logged (unless
    ``quiet``: a department report reads every officer's) and skipped."""
    if profile is None:
        return None, ""
    for source, code in (
        ("token", profile.post_claimed),
        ("department", profile.post_assigned),
        ("choice", profile.post_chosen),
    ):
        if not code:
            continue
        post = posts.get(code) or _by_name(posts.values(), code)
        if post is not None:
            return post, source
        if quiet:
            continue
        logger.warning(
            "user %s: post %r (from the %s) is not a known post; ignored",
            profile.user_id,
            code,
            source,
        )
    return None, ""


def _by_name(posts: Iterable[Post], name: str) -> Post | None:
    """The post with ``name`` in some language, case aside: a directory's title attribute
    (``Block Development Officer``) names a post as well as its code does."""
    wanted = name.casefold()
    return next((p for p in posts if any(wanted == n.casefold() for n in p.name.values())), None)


def gap_for(
    profile: Profile | None, posts: Mapping[str, Post], reached: Mapping[str, int], language: str
) -> Gap:
    """The officer's post, its requirements against ``reached`` and the path: two queries with
    a post (its requirements, the courses teaching them), none without."""
    post, source = post_of(profile, posts)
    if post is None:
        return Gap()
    rows = list(
        PostCompetency.objects.filter(post=post)
        .select_related("sub_theme")
        .order_by("sort_order", "pk")
    )
    requirements = [
        Requirement(
            iri=row.sub_theme.iri,
            name=localized(row.sub_theme.name, language),
            required=row.level,
            reached=reached.get(row.sub_theme.iri, 0),
        )
        for row in rows
    ]
    iris = {row.sub_theme_id: row.sub_theme.iri for row in rows if row.sub_theme.iri}
    open_ids = [sid for sid, iri in iris.items() if reached.get(iri, 0) < _needed(rows, sid)]
    teaches: dict[int, dict[str, int]] = {}
    entries = {}
    if open_ids:
        for link in EntryCompetency.objects.filter(
            sub_theme_id__in=open_ids, entry__retired=False, entry__hidden=False
        ).select_related("entry"):
            entries[link.entry_id] = link.entry
            teaches.setdefault(link.entry_id, {})[iris[link.sub_theme_id]] = link.level
    candidates = [
        Candidate(
            key=str(entry.uuid),
            title=entry.title,
            url=entry.url,
            languages=tuple(entry.languages),
            duration=entry.duration_minutes,
            teaches=teaches[pk],
        )
        for pk, entry in entries.items()
    ]
    steps, uncovered = plan(requirements, candidates, language)
    return Gap(post, source, requirements, steps, uncovered)


def _needed(rows: Sequence[PostCompetency], sub_theme_id: int) -> int:
    return max(int(row.level) for row in rows if row.sub_theme_id == sub_theme_id)


def levels_reached(areas: Iterable[object]) -> dict[str, int]:
    """Competency IRI → highest level reached, from :func:`learning.passbook.passbook`."""
    return {
        reached.iri: reached.level
        for area in areas
        for theme in getattr(area, "themes", {}).values()
        for reached in theme.sub_themes
    }


# --- a department's gaps by post ------------------------------------------------------------


@dataclass
class PostGapRow:
    name: str
    required: int
    below: Figure  # officers of the post below the level it needs


@dataclass
class PostGaps:
    post: Post
    officers: Figure
    rows: list[PostGapRow]


def department_gaps(department: str, language: str) -> list[PostGaps]:
    """Per post held in ``department``, how many of its officers are below each level the
    post needs, with the hub dashboard's small-cell suppression (``xapi.selectors``): a count
    under 5 shows as "fewer than 5", and a post's number of officers hides when it would give
    a hidden count back by subtraction. Four queries however many officers."""
    from tenant_portal.learning.models import Certificate, ImportedCredential

    profiles = list(Profile.objects.filter(department=department))
    posts = {
        post.code: post
        for post in Post.objects.filter(retired=False).prefetch_related(
            Prefetch(
                "requirements",
                PostCompetency.objects.select_related("sub_theme").order_by("sort_order", "pk"),
            )
        )
    }
    reached: dict[int, dict[str, int]] = {}
    held = [
        *Certificate.objects.filter(enrolment__user__profile__department=department).values_list(
            "enrolment__user_id", "competencies"
        ),
        *ImportedCredential.objects.filter(
            user__profile__department=department, revoked__isnull=True
        ).values_list("user_id", "competencies"),
    ]
    for user_id, terms in held:
        mine = reached.setdefault(user_id, {})
        for term in terms:
            mine[term["iri"]] = max(mine.get(term["iri"], 0), int(term["level"]))
    holders: dict[str, list[int]] = {}
    for profile in profiles:
        post, _ = post_of(profile, posts, quiet=True)
        if post is not None:
            holders.setdefault(post.code, []).append(profile.user_id)
    found = []
    for code, users in holders.items():
        post = posts[code]
        rows, lines = [], []
        for need in post.requirements.all():
            iri = need.sub_theme.iri
            below = sum(1 for u in users if reached.get(u, {}).get(iri, 0) < need.level)
            name = localized(need.sub_theme.name, language)
            rows.append(PostGapRow(name, need.level, learners_cell(below)))
            lines.append([learners_cell(below), learners_cell(len(users) - below)])
        found.append(PostGaps(post, learners_total(len(users), *lines), rows))
    return sorted(found, key=lambda g: localized(g.post.name, language))
