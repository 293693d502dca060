from __future__ import annotations

from django.urls import path

from tenant_portal.learning import views

urlpatterns = [
    path("learn/<uuid:course>/enrol/", views.enrol, name="enrol"),
    path("learn/<uuid:course>/lessons/<str:lesson>/done/", views.lesson_done, name="lesson_done"),
    path("learn/<uuid:course>/quizzes/<str:lesson>/", views.quiz, name="quiz"),
    path("certificates/<str:certificate>/", views.verify_certificate, name="verify_certificate"),
    path(
        "certificates/<uuid:certificate>/pdf/",
        views.download_certificate,
        name="download_certificate",
    ),
    path(
        "certificates/<uuid:certificate>/credential/",
        views.download_credential,
        name="download_credential",
    ),
    path("credentials/verify/", views.verify_credential, name="verify_credential"),
    path(
        "credentials/status/<int:number>/",
        views.credential_status_list,
        name="credential_status_list",
    ),
    path("passbook/", views.passbook_view, name="passbook"),
    path("passbook/post/", views.choose_post, name="choose_post"),
    path("passbook/import/", views.import_credential, name="import_credential"),
    path("reports/", views.department_report, name="my_department_report"),
    path("reports/<slug:department>/", views.department_report, name="department_report"),
    path("reports/<slug:department>/posts/", views.assign_post, name="assign_post"),
    path(
        "reports/<slug:department>/csv/",
        views.department_report_csv,
        name="department_report_csv",
    ),
]
