"""Keycloak desired state, the realm reconciler and per-tenant login themes.

Never imports ``infra`` or ``tenant_portal``: it receives typed values only.
"""
