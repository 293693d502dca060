"""OAI-PMH 2.0 at ``/oai``: the courses this instance lists publicly, for any harvester.

``docs/oai-pmh.md`` is the reference; DESIGN §6 the brief. ``selectors`` decides which catalogue
rows are items and reads them a page at a time, ``metadata`` writes a row as ``oai_dc`` and IEEE
LOM, ``tokens`` packs keyset resumption tokens, ``protocol`` answers the six verbs and every
error, and ``views`` is the endpoint.
"""
