"""The xAPI benchmark's steps that run inside the tenant, one process each.

``scripts/bench/xapi.py`` runs ``python worker.py STEP ...`` with the tenant's environment (the
production settings, its own database and data folder) and reads the JSON object this prints
as its last line. The steps:

- ``fill``: ``--count`` completions queued in the outbox, as the certificate signal queues
  them (``statements.completion``), written in bulk;
- ``deliver``: ``xapi.delivery.deliver`` run in this process (the batch size is the
  ``KARMAYOGI_XAPI_BATCH_SIZE`` of its environment), timed once Django has started;
- ``prune``: every delivered row removed (``delivery.prune`` with 0 days), timed.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

WRITE_BATCH = 5000
COURSES = 200  # distinct course IRIs the completions are spread over
AREAS = ("behavioural", "functional", "domain")


def fill(args: argparse.Namespace) -> dict[str, Any]:
    from django.utils import timezone

    from tenant_portal.xapi import statements
    from tenant_portal.xapi.models import OutboxStatement

    began = time.perf_counter()
    now = timezone.now()
    rows = []
    for number in range(args.count):
        certificate = uuid.uuid4()
        area = AREAS[number % len(AREAS)]
        statement = statements.completion(
            certificate=certificate,
            user_pk=args.first + number,
            course_iri=f"https://learn.bihar.example/courses/{number % COURSES}",
            course_name={"en": f"Course {number % COURSES}", "hi": f"पाठ्यक्रम {number % COURSES}"},
            competencies=[
                {"iri": f"https://karmayogi.example/kcm/{area}/t/s"},
                {"iri": "https://karmayogi.example/kcm/domain/t/s"},
            ],
            completed=now - timedelta(seconds=number),
        )
        rows.append(
            OutboxStatement(
                statement_id=statement["id"],
                certificate=certificate,
                verb=statements.COMPLETED,
                statement=statement,
                next_attempt_at=now,
            )
        )
    OutboxStatement.objects.bulk_create(rows, batch_size=WRITE_BATCH)
    size = len(json.dumps(rows[0].statement, ensure_ascii=False).encode()) if rows else 0
    return {"seconds": time.perf_counter() - began, "bytes": size}


def deliver(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings

    from tenant_portal.xapi.delivery import deliver as send
    from tenant_portal.xapi.delivery import outbox_status

    began = time.perf_counter()
    result = send()
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "batch": settings.PORTAL.xapi_batch_size,
        "delivered": result.delivered,
        "rejected": result.rejected,
        "failed": result.failed,
        "errors": result.errors[-1:],
        "pending": outbox_status()["pending"],
    }


def prune(args: argparse.Namespace) -> dict[str, Any]:
    from tenant_portal.xapi.delivery import prune as remove

    began = time.perf_counter()
    count = remove(days=0)
    return {"seconds": time.perf_counter() - began, "pruned": count}


STEPS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "fill": fill,
    "deliver": deliver,
    "prune": prune,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--first", type=int, default=1, help="the first learner's key")
    args = parser.parse_args()
    import django

    django.setup()
    print(json.dumps(STEPS[args.step](args)), flush=True)


if __name__ == "__main__":
    main()
