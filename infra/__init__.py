"""Tenant specs, rendering, the ``karmayogi`` CLI and the local runtime."""
