"""A write that found the database busy answers 503 with ``Retry-After``, never 500.

On the embedded default (SQLite) one writer at a time holds the database. The settings make
every transaction take the write lock when it begins and wait up to 20 seconds for it
(``settings.dev``), so a double-clicked button or a burst of quiz answers queue up and all
succeed. A request that still times out gets this middleware's answer: "busy, try again in a
few seconds", with nothing half-written (its transaction was rolled back). SQLite says which
error it is by its code, so nothing here matches message text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def database_busy(exc: BaseException) -> bool:
    """Whether ``exc`` (or the driver error behind it) is SQLite's "database is locked"."""
    for error in (exc, exc.__cause__):
        if str(getattr(error, "sqlite_errorname", "")).startswith(_BUSY):
            return True
    return False


class DatabaseBusyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, OperationalError) or not database_busy(exc):
            return None
        log.warning("database busy: %s %s answered 503", request.method, request.path)
        response = TemplateResponse(request, "503.html", status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response.render()
