"""The production settings, plus one bare Django view to compare the portal's pages with.

Used only by ``scripts/bench/portal.py``, which puts this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

from tenant_portal.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
