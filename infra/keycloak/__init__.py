"""Keycloak as every target runs it: the pinned release, Java, and the kit's operator accounts."""
