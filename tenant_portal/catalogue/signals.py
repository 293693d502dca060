"""Publishing, unpublishing or deleting a course page rewrites its catalogue row; any other
page change only empties the anonymous page cache."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver
from wagtail.models import Page
from wagtail.signals import page_published, page_unpublished, post_page_move

from tenant_portal.catalogue.models import CoursePage
from tenant_portal.catalogue.services import index_course
from tenant_portal.core.page_cache import bump_generation


@receiver(page_published)
@receiver(page_unpublished)
def page_changed(sender: Any, instance: Page, **kwargs: Any) -> None:
    if isinstance(instance, CoursePage) and instance.alias_of_id is None:
        index_course(instance.translation_key)
    else:
        bump_generation()


@receiver(post_page_move)
def page_moved(sender: Any, **kwargs: Any) -> None:
    bump_generation()  # cached routes and pages name the old place


@receiver(post_delete, sender=CoursePage)
def course_deleted(sender: Any, instance: CoursePage, **kwargs: Any) -> None:
    index_course(instance.translation_key)
