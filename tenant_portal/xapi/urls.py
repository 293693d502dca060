from __future__ import annotations

from django.urls import path

from tenant_portal.xapi import views

urlpatterns = [
    path("xapi/statements", views.statements, name="xapi_statements"),
    path("federation/completions/", views.completions, name="federation_completions"),
    path("federation/completions.json", views.completions_json, name="federation_completions_json"),
]
