"""``/oai``: the OAI-PMH endpoint. GET with a query string, or POST with a form body."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from lxml import etree

from tenant_portal.oai.protocol import respond


@csrf_exempt  # harvesters POST without a session or token; nothing here writes
@never_cache  # never stored by the anonymous page cache or anyone else: it changes with the data
@require_http_methods(["GET", "HEAD", "POST"])
def endpoint(request: HttpRequest) -> HttpResponse:
    query = request.POST if request.method == "POST" else request.GET
    arguments = {name: query.getlist(name) for name in query}
    document = respond(arguments)
    body = etree.tostring(document, xml_declaration=True, encoding="UTF-8")
    return HttpResponse(body, content_type="text/xml; charset=utf-8")
