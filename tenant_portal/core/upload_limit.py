"""Refuse a request body over the upload limit before anything reads it.

Django limits form fields (``DATA_UPLOAD_MAX_MEMORY_SIZE``) but not files, and Wagtail limits
images but not documents: a 2 GB "document" would be streamed to disk before any check. This
middleware answers 413 with a one-line reason as soon as the declared length is too large, so
nothing is read, stored or half-written.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _


class UploadLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.PORTAL.max_upload_mb * 1024 * 1024
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            message = _(
                "The upload is %(size)d MB, more than this portal's limit of %(limit)d MB. "
                "Nothing was saved."
            ) % {"size": -(-length // (1024 * 1024)), "limit": settings.PORTAL.max_upload_mb}
            response = TemplateResponse(request, "413.html", {"message": message}, status=413)
            response["Connection"] = "close"
            return response.render()
        return self.get_response(request)
