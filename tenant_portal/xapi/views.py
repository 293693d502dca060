"""``/xapi/statements`` (the hub's statement resource, for federation clients) and the national
completions dashboard (``/federation/completions/`` and ``.json``, public, every figure under
the small-cell rule of :mod:`~tenant_portal.xapi.selectors`). Both exist only on the hub:
elsewhere they answer 404."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from tenant_portal.federation.auth import Unauthorized, caller
from tenant_portal.xapi import selectors, services
from tenant_portal.xapi.statements import VERSION
from tenant_portal.xapi.validation import StatementError, loads, parse

log = logging.getLogger(__name__)

MAX_PUT_BYTES = 64 * 1024
MAX_POST_BYTES = 1024 * 1024
MAX_BATCH = 500
MAX_LIMIT = 500
DASHBOARD_SECONDS = 60


def _is_hub() -> bool:
    return settings.PORTAL.federation.is_hub


def _xapi(response: HttpResponse) -> HttpResponse:
    response["X-Experience-API-Version"] = VERSION
    return response


def _error(status: int, message: str) -> HttpResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="karmayogi-federation"'
    return _xapi(response)


def _body(request: HttpRequest, limit: int) -> Any:
    """The request's JSON body, read no further than ``limit`` bytes."""
    if request.content_type != "application/json":
        raise StatementError("Content-Type: application/json is required")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise _TooLarge(f"the body is over {limit // 1024} KB")
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise _TooLarge(f"the body is over {limit // 1024} KB")
    return loads(raw)  # nesting, numbers and text that would break the hub are refused too


class _TooLarge(Exception):
    """The request is over a limit (413); the message says which."""


def _statement_id(value: str | None, name: str) -> uuid.UUID | None:
    if value is None:
        return None
    if len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise StatementError(f"{name}: must be a UUID")


@csrf_exempt
def statements(request: HttpRequest) -> HttpResponse:
    if not _is_hub():
        return _error(404, "this instance is not the federation's hub")
    if request.method not in ("GET", "HEAD", "PUT", "POST"):
        response = _error(405, f"{request.method} is not supported")
        response["Allow"] = "GET, HEAD, PUT, POST"
        return response
    try:
        code = caller(request)
    except Unauthorized as exc:
        return _error(401, str(exc))
    version = request.headers.get("X-Experience-API-Version", "")
    if not re.fullmatch(r"1\.0(\.\d+)?", version):
        return _error(400, "X-Experience-API-Version: a 1.0.x version header is required")
    try:
        if request.method in ("GET", "HEAD"):
            return _get(request, code)
        if request.method == "PUT":
            return _put(request, code)
        return _post(request, code)
    except StatementError as exc:
        return _error(400, str(exc))
    except _TooLarge as exc:
        return _error(413, str(exc))
    except services.Refused as exc:
        return _error(403, str(exc))
    except services.Conflict as exc:
        return _error(409, str(exc))


def _put(request: HttpRequest, code: str) -> HttpResponse:
    statement_id = _statement_id(request.GET.get("statementId"), "statementId")
    if statement_id is None:
        raise StatementError("statementId: required with PUT")
    parsed = parse(_body(request, MAX_PUT_BYTES), statement_id=statement_id)
    services.statements_store(parsed=[parsed], caller=code)
    log.info("xapi: %s put %s", code, statement_id)
    return _xapi(HttpResponse(status=204))


def _post(request: HttpRequest, code: str) -> HttpResponse:
    body = _body(request, MAX_POST_BYTES)
    many = body if isinstance(body, list) else [body]
    if not many:
        raise StatementError("statements: the array is empty")
    if len(many) > MAX_BATCH:
        raise _TooLarge(f"statements: at most {MAX_BATCH} statements per request")
    parsed = []
    for number, item in enumerate(many):
        try:
            parsed.append(parse(item))
        except StatementError as exc:
            raise StatementError(
                f"statements[{number}].{exc}" if len(many) > 1 else str(exc)
            ) from None
    ids = services.statements_store(parsed=parsed, caller=code)
    log.info("xapi: %s posted %d statement(s)", code, len(ids))
    return _xapi(JsonResponse(ids, safe=False))


def _get(request: HttpRequest, code: str) -> HttpResponse:
    hub = settings.PORTAL.federation_code
    statement_id = _statement_id(request.GET.get("statementId"), "statementId")
    voided_id = _statement_id(request.GET.get("voidedStatementId"), "voidedStatementId")
    if statement_id and voided_id:
        raise StatementError("statementId and voidedStatementId: give one, not both")
    if statement_id or voided_id:
        row = selectors.statement(
            statement_id or voided_id, voided=voided_id is not None, caller=code, hub=hub
        )
        if row is None:
            return _error(404, "no such statement")
        return _xapi(JsonResponse(row.statement))
    since = _time(request.GET.get("since"), "since")
    limit = _whole(request.GET.get("limit"), "limit", 100, 0, MAX_LIMIT) or MAX_LIMIT
    cursor = _whole(request.GET.get("cursor"), "cursor", 0, 0, 2**62) or None
    ascending = request.GET.get("ascending", "false") == "true"
    rows, more = selectors.statements_page(
        caller=code, hub=hub, since=since, limit=limit, ascending=ascending, cursor=cursor
    )
    next_page = ""
    if more is not None:
        params = {k: v for k, v in request.GET.items() if k != "cursor"}
        next_page = f"{request.path}?{urlencode({**params, 'cursor': more})}"
    return _xapi(JsonResponse({"statements": [r.statement for r in rows], "more": next_page}))


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value) if len(value) < 40 else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise StatementError(f"{name}: must be an ISO 8601 time with its offset")
    return when


def _whole(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or len(value) > 18 or not low <= int(value) <= high:
        raise StatementError(f"{name}: must be a whole number from {low} to {high}")
    return int(value)


# --- the dashboard ---------------------------------------------------------------------------


def _operator(request: HttpRequest) -> bool:
    """A signed-in user allowed to see received statements (in the admin too) sees the
    operations table; nobody else, so the public page keeps to the small-cell rule."""
    return bool(request.user.has_perm("xapi.view_receivedstatement"))


def _dashboard(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if request.user.is_authenticated:
        # The page carries the visitor's name, a CSRF token in its sign-out form, perhaps the
        # operations table: for their browser only.
        patch_cache_control(response, private=True, no_store=True)
    else:
        # Public aggregates: a cache may keep them a minute, never longer.
        patch_cache_control(response, public=True, max_age=DASHBOARD_SECONDS)
    patch_vary_headers(response, ["Cookie"])
    return response


@require_GET
def completions(request: HttpRequest) -> HttpResponse:
    if not _is_hub():
        raise Http404
    data = selectors.completions()
    rows = [
        {
            "tenant": row["tenant"],
            "cells": [row["areas"][area["iri"]] for area in data["areas"]],
            "total": row["total"],
        }
        for row in data["tenants"]
    ]
    context = {
        "data": data,
        "rows": rows,
        "area_totals": [data["areaTotals"][area["iri"]] for area in data["areas"]],
        "operations": selectors.operations() if _operator(request) else None,
    }
    return _dashboard(request, TemplateResponse(request, "xapi/completions.html", context))


@require_GET
def completions_json(request: HttpRequest) -> HttpResponse:
    if not _is_hub():
        raise Http404
    return _dashboard(
        request, JsonResponse(selectors.completions(), json_dumps_params={"ensure_ascii": False})
    )
