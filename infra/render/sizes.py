"""``deployment.size`` in one table that every target reads.

Figures are starting points for a state's first year, sized on the measurements in the
README (a portal worker holds ~150 MB; Keycloak 26 idles at ~600 MB with a 768 MB heap) and
on Keycloak's own sizing guide (one vCPU per ~15 password logins/s, 1.25 GB per pod for
10,000 cached sessions). A target takes what it can use: Ansible the workers and heap, Helm the
requests and replicas, Pulumi the database class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SizeName = Literal["small", "medium", "large"]


@dataclass(frozen=True)
class Size:
    portal_workers: int  # gunicorn processes per portal replica
    portal_threads: int  # threads per worker (gthread): requests mostly wait on the database
    portal_replicas: int  # the fewest replicas (Helm: the autoscaler's minimum)
    portal_max_replicas: int  # the most the autoscaler may run (Helm)
    portal_cpu: str  # Kubernetes request per replica
    portal_memory: str
    keycloak_replicas: int  # 2+ run clustered (Infinispan; peers found through the database)
    keycloak_heap: str  # -Xmx; Keycloak 24+ would take half the machine otherwise
    keycloak_cpu: str
    keycloak_memory: str
    database_class: str  # RDS instance class; a VM's PostgreSQL takes its memory share
    database_storage_gb: int
    database_multi_az: bool  # RDS standby in a second availability zone (aws)


SIZES: dict[SizeName, Size] = {
    "small": Size(
        portal_workers=2,
        portal_threads=4,
        portal_replicas=1,
        portal_max_replicas=3,
        portal_cpu="250m",
        portal_memory="512Mi",
        keycloak_replicas=1,
        keycloak_heap="768m",
        keycloak_cpu="500m",
        keycloak_memory="1Gi",
        database_class="db.t4g.small",
        database_storage_gb=20,
        database_multi_az=False,
    ),
    "medium": Size(
        portal_workers=4,
        portal_threads=4,
        portal_replicas=2,
        portal_max_replicas=6,
        portal_cpu="1",
        portal_memory="1Gi",
        keycloak_replicas=2,
        keycloak_heap="1536m",
        keycloak_cpu="1",
        keycloak_memory="2Gi",
        database_class="db.t4g.large",
        database_storage_gb=100,
        database_multi_az=True,
    ),
    "large": Size(
        portal_workers=8,
        portal_threads=4,
        portal_replicas=4,
        portal_max_replicas=12,
        portal_cpu="2",
        portal_memory="2Gi",
        keycloak_replicas=3,
        keycloak_heap="3g",
        keycloak_cpu="2",
        keycloak_memory="4Gi",
        database_class="db.m7g.xlarge",
        database_storage_gb=500,
        database_multi_az=True,
    ),
}
ORDER: tuple[SizeName, ...] = ("small", "medium", "large")


def largest(names: list[SizeName]) -> SizeName:
    """The size of a part several tenants share (one Keycloak per deployment)."""
    return max(names, key=ORDER.index, default="small")
