"""Production-mode Keycloak: rendered options, the theme JAR, bootstrap and reconciling."""
