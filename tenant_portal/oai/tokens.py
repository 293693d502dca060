"""Keyset resumption tokens.

A token carries the original request's arguments and the key (primary key) of the last item
it served, never an offset: DESIGN §9 found offset tokens skipping or repeating records when
the catalogue changes mid-harvest. Items are served in key order and each page asks for keys
above the last one, so an item added mid-harvest comes at the end, and no item present at the
start is skipped or served twice. ``from``, ``until`` and ``set`` are re-evaluated on every
page. Tokens are compact JSON, base64url, signed (HMAC with the instance's secret key) so that a
tampered token is refused as such rather than read as some other request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.core import signing

SALT = "karmayogi.oai.resumption"


class BadToken(ValueError):
    """A resumption token this repository did not issue, or one altered since."""


@dataclass(frozen=True)
class Token:
    verb: str
    prefix: str
    set_spec: str | None
    start: str | None  # the request's own from / until, as given
    end: str | None
    after: int  # the key of the last item served
    cursor: int  # how many items earlier responses served

    def dumps(self) -> str:
        return signing.dumps(asdict(self), salt=SALT, compress=False)


def loads(value: str) -> Token:
    try:
        data = signing.loads(value, salt=SALT)
    except (signing.BadSignature, ValueError, UnicodeError) as exc:
        raise BadToken(str(exc)) from None
    try:
        token = Token(**data)
    except TypeError as exc:
        raise BadToken(str(exc)) from None
    strings = (token.verb, token.prefix)
    optional = (token.set_spec, token.start, token.end)
    if (
        not all(isinstance(s, str) for s in strings)
        or not all(o is None or isinstance(o, str) for o in optional)
        or not all(type(n) is int and n >= 0 for n in (token.after, token.cursor))
    ):
        raise BadToken("malformed fields")
    return token
