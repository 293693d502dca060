"""The machine's own Debian mirror, read from its apt sources (never named in code).

Both formats are read: one-line ``/etc/apt/sources.list`` (and ``sources.list.d/*.list``) and
deb822 ``sources.list.d/*.sources``. Only ``deb`` entries for the wanted release count, so the
test host is made from, and later fed through, exactly the mirror this machine installs from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.rig.errors import RigError

RELEASE = "bookworm"


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` source: a mirror URL, its suites and components."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]

    @property
    def host(self) -> str:
        return urlsplit(self.uri).netloc

    @property
    def scheme(self) -> str:
        return urlsplit(self.uri).scheme

    def through(self, proxy_url: str) -> AptSource:
        """The same source reached through an apt-cacher-style proxy: ``PROXY/host/path``."""
        parts = urlsplit(self.uri)
        return AptSource(
            f"{proxy_url.rstrip('/')}/{parts.netloc}{parts.path}", self.suites, self.components
        )

    def line(self) -> str:
        return " ".join(["deb", self.uri, *self.suites, *self.components])


def machine_sources(etc_apt: Path = Path("/etc/apt"), release: str = RELEASE) -> list[AptSource]:
    """The ``deb`` sources of ``release`` (and its -updates/-security suites) this machine uses.

    The first one carries the release itself: it is the mirror debootstrap uses.
    """
    files = [etc_apt / "sources.list"]
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    found: list[AptSource] = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        entries = _deb822(text) if path.suffix == ".sources" else _one_line(text)
        for source in entries:
            suites = tuple(s for s in source.suites if s == release or s.startswith(f"{release}-"))
            if suites and source.scheme in ("http", "https"):
                found.append(AptSource(source.uri.rstrip("/"), suites, source.components))
    found.sort(key=lambda s: release not in s.suites)
    if not found or release not in found[0].suites:
        raise RigError(f"{etc_apt}: no 'deb' source for Debian {release}; the test host needs one")
    return found


def _one_line(text: str) -> list[AptSource]:
    sources = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        words = [w for w in words[1:] if not w.startswith("[")]  # drop [options]
        sources.append(AptSource(words[0], (words[1],), tuple(words[2:])))
    return sources


def _deb822(text: str) -> list[AptSource]:
    sources = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw or raw[:1].isspace():
                continue
            key, value = raw.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(
                AptSource(
                    uri,
                    tuple(fields.get("suites", "").split()),
                    tuple(fields.get("components", "").split()),
                )
            )
    return sources
