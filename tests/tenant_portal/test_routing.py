"""The remembered path → page routes: keyed so that every cache backend takes them."""

from __future__ import annotations

import warnings

import pytest
from django.core.cache.backends.base import CacheKeyWarning
from django.test import Client


@pytest.mark.django_db
def test_a_very_long_path_is_a_plain_404_with_a_key_any_cache_takes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        response = Client().get("/courses/" + "9" * 1000 + "/")
    assert response.status_code == 404
