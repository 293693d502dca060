"""Per-tenant Keycloak login themes: rendered from the kit's templates, written as files.

Themes are not admin-API objects: Keycloak reads them from a folder on its server. The kit
renders one theme per tenant (``karmayogi-<code>``) that extends ``keycloak.v2`` and adds only
branding (logo and colours, in a stylesheet loaded after the parent's), the tenant's languages,
the names of India's scheduled languages for the language picker, and the kit's translations.
The realm's display name, which the reconciler sets, stays the header's text.

The package's ``theme/`` folder holds the kit's side of it. Below ``login/`` it is laid out as
the theme itself: ``*.j2`` files are Jinja templates, ``login/messages/messages_<tag>.properties``
are the kit's translations, and other files are copied as they are. ``language-names.properties``
at its top is appended to the bundle of every tenant language (a bundle of names alone where the
kit has no translation), because Keycloak labels the language picker from the current language's
own bundle and from nothing else the theme provides.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import jinja2

from identity.errors import IdentityError

THEME_PREFIX = "karmayogi-"
LOGO_SUFFIXES = (".svg", ".png")
LOGO_DIR = "login/resources/img"
MESSAGES_DIR = "login/messages"
LANGUAGE_NAMES_FILE = "language-names.properties"

# Inside a theme JAR: each theme under theme/<name>/, and the list Keycloak reads at build.
JAR_THEMES_DIR = "theme"
JAR_THEME_LIST = "META-INF/keycloak-themes.json"
# Every JAR entry carries this time (the earliest a zip can hold): the same themes give the
# same bytes, so a changed logo, and nothing else, changes the JAR's checksum.
_JAR_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

_TEMPLATE_SUFFIX = ".j2"
_CODE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_BUNDLE = re.compile(r"^messages_([A-Za-z0-9_]+)\.properties$")


@dataclass(frozen=True)
class LoginTheme:
    """One tenant's login theme; ``languages`` are BCP 47 tags, the first the default."""

    name: str
    display_name: str
    logo: bytes
    logo_suffix: str
    primary: str
    accent: str
    languages: tuple[str, ...]
    # Text on the primary colour; the caller derives it with the portal's contrast rules
    # (infra.colors), so the login page and the portal agree.
    on_primary: str = "#ffffff"

    def __post_init__(self) -> None:
        if not self.name.startswith(THEME_PREFIX) or not _CODE.match(self.name):
            raise IdentityError(
                f"login theme name {self.name!r} is not a kit theme name; use theme_name(code)"
            )
        if self.logo_suffix not in LOGO_SUFFIXES:
            raise IdentityError(
                f"login theme {self.name}: logo must be one of {', '.join(LOGO_SUFFIXES)},"
                f" not {self.logo_suffix!r}"
            )
        if not self.logo:
            raise IdentityError(f"login theme {self.name}: the logo file is empty")
        colours = (
            ("primary", self.primary),
            ("accent", self.accent),
            ("on_primary", self.on_primary),
        )
        for field, colour in colours:
            if not _COLOUR.match(colour):
                raise IdentityError(
                    f"login theme {self.name}: {field} colour {colour!r} is not #RRGGBB"
                )
        if not self.languages:
            raise IdentityError(f"login theme {self.name}: no languages")
        for tag in self.languages:
            if not _LANGUAGE_TAG.match(tag):
                raise IdentityError(
                    f"login theme {self.name}: {tag!r} is not a BCP 47 language tag"
                )
        if len(set(self.languages)) != len(self.languages):
            raise IdentityError(f"login theme {self.name}: languages repeat")


def theme_name(code: str) -> str:
    """The theme folder name of a tenant, also the realm's ``loginTheme``."""
    if not _CODE.match(code):
        raise IdentityError(f"tenant code {code!r} cannot name a login theme")
    return f"{THEME_PREFIX}{code}"


def bundled_locales() -> tuple[str, ...]:
    """Languages for which the kit ships a complete login message bundle."""
    return tuple(sorted(_bundles()))


def render_theme(theme: LoginTheme) -> dict[str, bytes]:
    """Every file of the theme: posix path under the theme folder -> content, sorted."""
    files: dict[str, bytes] = {}
    context = _context(theme)
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    for rel, source in _data_files():
        if "/" not in rel or rel.startswith(f"{MESSAGES_DIR}/"):
            continue  # kit inputs at the top, and bundles, which are chosen per language below
        if rel.endswith(_TEMPLATE_SUFFIX):
            text = env.from_string(source.read_text(encoding="utf-8")).render(context)
            files[rel.removesuffix(_TEMPLATE_SUFFIX)] = text.encode("utf-8")
        else:
            files[rel] = source.read_bytes()
    bundles = _bundles()
    names = _data_root().joinpath(LANGUAGE_NAMES_FILE).read_bytes()
    for tag in theme.languages:
        # The kit's translation when it has one, then the names; the names alone otherwise.
        bundle = _data_root().joinpath(bundles[tag]).read_bytes() if tag in bundles else b""
        if bundle:
            bundle = bundle.rstrip(b"\n") + b"\n\n"
        files[f"{MESSAGES_DIR}/{_bundle_filename(tag)}"] = bundle + names
    files[f"{LOGO_DIR}/{context['logo_file']}"] = theme.logo
    return dict(sorted(files.items()))


def write_theme(theme: LoginTheme, themes_dir: Path) -> bool:
    """Make ``themes_dir/<name>`` hold exactly the rendered theme; True if anything changed.

    Creates the folders it needs, ``themes_dir`` included.

    Each file is replaced atomically (a temporary file renamed over it), so a Keycloak reading
    the folder meanwhile sees the old or the new file, never half of one. Files the theme does
    not render are removed.
    """
    root = _theme_root(theme.name, themes_dir)
    files = render_theme(theme)
    changed = False
    for rel in sorted(set(_present_files(root)) - set(files)):
        _remove(root / rel)
        changed = True
    _prune_empty_dirs(root)
    for rel, content in files.items():
        target = root / rel
        if target.is_file() and not target.is_symlink() and target.read_bytes() == content:
            continue
        _write_atomically(target, content)
        changed = True
    return changed


def theme_drift(theme: LoginTheme, themes_dir: Path) -> list[str]:
    """Paths under the theme folder that are missing, different or extra; [] when identical.

    A theme never written (or a themes folder not created yet) is all missing.
    """
    root = _theme_root(theme.name, themes_dir)
    files = render_theme(theme)
    present = set(_present_files(root))
    drift = set(present - set(files))
    for rel, content in files.items():
        target = root / rel
        if rel not in present or target.is_symlink() or target.read_bytes() != content:
            drift.add(rel)
    return sorted(drift)


def theme_jar(themes: Sequence[LoginTheme]) -> bytes:
    """One JAR holding every theme, for a production Keycloak's ``providers/`` folder.

    Each theme sits under ``theme/<name>/`` and ``META-INF/keycloak-themes.json`` lists them;
    ``kc.sh build`` registers them. The bytes depend only on the themes: entries are sorted,
    timestamps and permissions fixed.
    """
    names = [theme.name for theme in themes]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise IdentityError(f"theme JAR: {', '.join(repeated)} given more than once")
    listing = {"themes": [{"name": name, "types": ["email", "login"]} for name in sorted(names)]}
    files = {JAR_THEME_LIST: (json.dumps(listing, indent=2) + "\n").encode("utf-8")}
    for theme in themes:
        for rel, content in render_theme(theme).items():
            files[f"{JAR_THEMES_DIR}/{theme.name}/{rel}"] = content
    folders = {
        "/".join(path.split("/")[:depth]) + "/"
        for path in files
        for depth in range(1, path.count("/") + 1)
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as jar:
        for path in sorted(folders | set(files)):
            info = zipfile.ZipInfo(path, date_time=_JAR_TIMESTAMP)
            info.create_system = 3  # unix, so the permissions below are read as such
            if path.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                jar.writestr(info, b"")
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                jar.writestr(info, files[path], compresslevel=9)
    return buffer.getvalue()


def remove_theme(name: str, themes_dir: Path) -> bool:
    """Delete a kit theme's folder; True if there was one. Refuses names the kit does not own."""
    if not name.startswith(THEME_PREFIX) or not _CODE.match(name):
        raise IdentityError(f"{name!r} is not a kit login theme; refusing to delete it")
    root = themes_dir / name
    if root.is_symlink():
        root.unlink()
        return True
    if not root.exists():
        return False
    shutil.rmtree(root)
    return True


# --- rendering -------------------------------------------------------------------------


def _context(theme: LoginTheme) -> dict[str, str]:
    primary = theme.primary.lower()
    return {
        "code": theme.name.removeprefix(THEME_PREFIX),
        # The name only appears inside a CSS comment; keep it from closing the comment.
        "display_name": " ".join(theme.display_name.replace("*/", "* /").split()),
        "primary": primary,
        "primary_dark": _darken(primary, 0.25),
        "on_primary": theme.on_primary.lower(),
        "accent": theme.accent.lower(),
        "logo_file": f"logo{theme.logo_suffix}",
        "locales": ",".join(theme.languages),
    }


def _darken(colour: str, amount: float) -> str:
    red, green, blue = _rgb(colour)
    return "#" + "".join(f"{round(c * (1 - amount)):02x}" for c in (red, green, blue))


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _data_root() -> Traversable:
    return resources.files("identity").joinpath("theme")


def _data_files() -> Iterator[tuple[str, Traversable]]:
    """The kit's theme data files as (posix path under the theme, file), sorted."""

    def walk(folder: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            rel = f"{prefix}{entry.name}"
            if entry.is_dir():
                yield from walk(entry, f"{rel}/")
            else:
                yield rel, entry

    yield from walk(_data_root(), "")


def _bundle_tag(filename: str) -> str | None:
    """``messages_pt_BR.properties`` -> ``pt-BR`` (Keycloak's file naming for a locale)."""
    match = _BUNDLE.match(filename)
    return match.group(1).replace("_", "-") if match else None


def _bundle_filename(tag: str) -> str:
    return f"messages_{tag.replace('-', '_')}.properties"


def _bundles() -> dict[str, str]:
    """Language tag -> path of the kit's message bundle for it."""
    found: dict[str, str] = {}
    for rel, _ in _data_files():
        folder, _, filename = rel.rpartition("/")
        tag = _bundle_tag(filename) if folder == MESSAGES_DIR else None
        if tag is not None:
            found[tag] = rel
    return found


# --- files -----------------------------------------------------------------------------


def _theme_root(name: str, themes_dir: Path) -> Path:
    if themes_dir.exists() and not themes_dir.is_dir():
        raise IdentityError(f"the Keycloak themes folder {themes_dir} is not a folder")
    return themes_dir / name


def _present_files(root: Path) -> list[str]:
    """Every file (and symlink) under root as a posix path; symlinks are not followed."""
    if not root.is_dir():
        return []
    found: list[str] = []
    for folder, dirnames, filenames in os.walk(root):
        base = Path(folder)
        names = list(filenames)
        for dirname in list(dirnames):
            if (base / dirname).is_symlink():
                dirnames.remove(dirname)
                names.append(dirname)
        found.extend((base / n).relative_to(root).as_posix() for n in names)
    return sorted(found)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _prune_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        path = Path(folder)
        if path != root and not any(path.iterdir()):
            path.rmdir()


def _write_atomically(target: Path, content: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        # Keycloak may run as another user (a container, a service account): world-readable.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
