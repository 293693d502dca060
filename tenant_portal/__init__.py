"""The tenant portal: one Django + Wagtail codebase, one running instance per tenant.

Each instance is configured only by the environment the kit renders from its tenant's spec
(``karmayogi render <code> --target local``); it never imports ``infra`` or ``identity``.
"""
