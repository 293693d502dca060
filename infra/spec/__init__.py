"""The tenant spec: one YAML file a tenant, read into typed, frozen models.

``model`` holds the models and the rules between their fields, ``loading`` reads files and
folders with line numbers, ``problems`` says what is wrong and where, ``languages`` is the
table of languages a tenant may switch on.
"""

from infra.spec.loading import load_spec, load_specs
from infra.spec.model import (
    TENANT_CODE_PATTERN,
    HubRef,
    TenantSpec,
    json_schema,
)
from infra.spec.problems import Problem, SpecError

__all__ = [
    "TENANT_CODE_PATTERN",
    "HubRef",
    "Problem",
    "SpecError",
    "TenantSpec",
    "json_schema",
    "load_spec",
    "load_specs",
]
