"""Reads on the hub: statements for the statements resource, and the national dashboard.

**Suppression** (the dashboard's only rule about people): a figure is a number of distinct
learners, and any figure under :data:`THRESHOLD` (5) is shown as "fewer than 5", zero
included. A total is also hidden when subtracting the figures shown beside it would give back
a hidden one: when exactly one hidden item of its line holds learners, or when the hidden
items together hold fewer than 5. The lines are a tenant's row (its areas), an area's column
(its tenants), and for the national total both the tenants' and the areas' totals.

The rule holds for everything the public dashboard shows, not only its cells: a tenant's row
appears only once 5 of its learners have completed (a row of "fewer than 5" would still say
"more than none"), and it shows no statement counts and no times, which would single out the
one learner behind a new statement. Those are for operators: :func:`operations`, shown only
to a signed-in user allowed to view received statements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from tenant_portal.competencies.models import Area, localized
from tenant_portal.xapi.models import ReceivedArea, ReceivedStatement
from tenant_portal.xapi.statements import COMPLETED

THRESHOLD = 5


def _voided(ref: str) -> Exists:
    """Whether a voiding statement from the same tenant targets the statement ``ref`` names."""
    return Exists(
        ReceivedStatement.objects.filter(voids=OuterRef(ref), platform=OuterRef("platform"))
    )


def live_statements() -> QuerySet[ReceivedStatement]:
    """Every stored statement that has not been voided (voiding statements included)."""
    return ReceivedStatement.objects.filter(~_voided("statement_id"))


def statement(
    statement_id: Any, *, voided: bool, caller: str, hub: str
) -> ReceivedStatement | None:
    """The statement by id: the live one, or with ``voided`` only a voided one (xAPI's
    ``statementId`` / ``voidedStatementId``). A tenant reads its own statements only."""
    rows = ReceivedStatement.objects.filter(statement_id=statement_id)
    if caller != hub:
        rows = rows.filter(platform=caller)
    rows = rows.filter(_voided("statement_id") if voided else ~_voided("statement_id"))
    return rows.first()


def statements_page(
    *,
    caller: str,
    hub: str,
    since: datetime | None,
    limit: int,
    ascending: bool,
    cursor: int | None,
) -> tuple[list[ReceivedStatement], int | None]:
    """One page of live statements, newest first unless ``ascending``; and the cursor of the
    next page, if there is one."""
    rows = live_statements()
    if caller != hub:
        rows = rows.filter(platform=caller)
    if since is not None:
        rows = rows.filter(stored__gt=since)
    if cursor is not None:
        rows = rows.filter(pk__gt=cursor) if ascending else rows.filter(pk__lt=cursor)
    found = list(rows.order_by("pk" if ascending else "-pk")[: limit + 1])
    more = found[limit - 1].pk if len(found) > limit else None
    return found[:limit], more


# --- the dashboard -------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    value: int
    shown: bool

    @property
    def as_json(self) -> dict[str, Any]:
        return {"learners": self.value if self.shown else None, "suppressed": not self.shown}


def learners_cell(value: int) -> Figure:
    """A number of distinct learners as the dashboard shows it: hidden under THRESHOLD."""
    return Figure(value, value >= THRESHOLD)


def learners_total(value: int, *lines: Iterable[Figure]) -> Figure:
    """A total, hidden when it is under 5 or when any of its lines would give a hidden figure
    back by subtraction."""
    shown = value >= THRESHOLD
    for line in lines:
        hidden = [f.value for f in line if not f.shown and f.value > 0]
        if len(hidden) == 1 or (hidden and sum(hidden) < THRESHOLD):
            shown = False
    return Figure(value, shown)


def completions() -> dict[str, Any]:
    """Distinct learners who completed a course, by tenant and competency area, with totals;
    suppressed as the module says. A fixed number of queries."""
    done = live_statements().filter(verb=COMPLETED)
    areas_done = ReceivedArea.objects.filter(
        ~Exists(
            ReceivedStatement.objects.filter(
                voids=OuterRef("statement__statement_id"), platform=OuterRef("platform")
            )
        )
    )
    cells = {
        (r["platform"], r["area"]): r["n"]
        for r in areas_done.values("platform", "area").annotate(n=Count("learner", distinct=True))
    }
    by_tenant = dict(
        done.values_list("platform").annotate(n=Count("learner", distinct=True)).order_by()
    )
    by_area = dict(
        areas_done.values_list("area").annotate(n=Count("learner", distinct=True)).order_by()
    )
    everyone = done.aggregate(n=Count("learner", distinct=True))["n"] or 0
    known = list(Area.objects.filter(retired=False).order_by("framework_id", "position"))
    area_iris = [a.iri for a in known]
    area_iris += sorted({area for _, area in cells} - set(area_iris))
    names = {a.iri: localized(a.name) for a in known}
    tenants = sorted(set(by_tenant) | {tenant for tenant, _ in cells})

    grid = {t: {a: learners_cell(cells.get((t, a), 0)) for a in area_iris} for t in tenants}
    tenant_totals = {t: learners_total(by_tenant.get(t, 0), grid[t].values()) for t in tenants}
    area_totals = {
        a: learners_total(by_area.get(a, 0), (grid[t][a] for t in tenants)) for a in area_iris
    }
    total = learners_total(everyone, tenant_totals.values(), area_totals.values())
    # An area outside the framework has a column only once 5 learners are in it.
    columns = [a for a in area_iris if a in names or by_area.get(a, 0) >= THRESHOLD]
    return {
        "threshold": THRESHOLD,
        "generated": timezone.now(),
        "areas": [
            {"iri": a, "name": names.get(a) or a.rstrip("/").rsplit("/", 1)[-1]} for a in columns
        ],
        "tenants": [
            {
                "tenant": t,
                "areas": {a: grid[t][a].as_json for a in columns},
                "total": tenant_totals[t].as_json,
            }
            # Every figure of a tenant with fewer than 5 learners is hidden; so is its row.
            for t in tenants
            if by_tenant.get(t, 0) >= THRESHOLD
        ],
        "areaTotals": {a: area_totals[a].as_json for a in columns},
        "total": total.as_json,
    }


def operations() -> list[dict[str, Any]]:
    """For operators only (never on the public dashboard): statements received per tenant,
    voided and voiding ones included, and when the last arrived."""
    return [
        {"tenant": r["platform"], "statements": r["statements"], "lastReceived": r["last"]}
        for r in ReceivedStatement.objects.values("platform")
        .annotate(statements=Count("id"), last=Max("stored"))
        .order_by("platform")
    ]
