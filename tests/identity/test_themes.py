"""Per-tenant login themes: rendering, writing and drift, and the Hindi bundle's completeness."""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from identity import themes
from identity.errors import IdentityError
from identity.themes import LoginTheme

LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle r="5"/></svg>\n'
HI_BUNDLE = Path(themes.__file__).parent / "theme" / "login" / "messages" / "messages_hi.properties"
ENGLISH_BUNDLE = "theme/base/login/messages/messages_en.properties"
# The kit's Hindi bundles and Keycloak's English ones they are complete against, per theme type.
BUNDLES = {
    "login": (HI_BUNDLE, ENGLISH_BUNDLE, 400),
    "email": (
        Path(themes.__file__).parent / "theme" / "email" / "messages" / "messages_hi.properties",
        "theme/base/email/messages/messages_en.properties",
        50,
    ),
}
V2_THEME_PROPERTIES = "theme/keycloak.v2/login/theme.properties"
# Values that are the same in Hindi: placeholders, product names, acronyms, the console's "y".
SAME_AS_ENGLISH = {
    "{0}",
    "USB",
    "NFC",
    "FreeOTP",
    "Google Authenticator",
    "Microsoft Authenticator",
    "y",
}
DEVANAGARI = re.compile(r"[\u0900-\u097f]")
PLACEHOLDER = re.compile(r"\{(\d+)[^{}]*\}|\$\{[^{}]+\}")
MARKUP = re.compile(r"</?[a-zA-Z][^>]*>|&[a-z]+;")
QUOTED_PLACEHOLDER = re.compile(r"''\{\d+\}''")


# --- helpers -----------------------------------------------------------------------------


def parse_properties(text: str) -> dict[str, str]:
    """Java ``Properties.load`` semantics: comments, continuations, separators, escapes."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}

    def unescape(value: str) -> str:
        def one(match: re.Match[str]) -> str:
            body = match.group(1)
            if body.startswith("u"):
                return chr(int(body[1:], 16))
            return escapes.get(body, body)

        return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", one, value)

    result: dict[str, str] = {}
    for line in logical:
        match = re.match(r"((?:\\.|[^\\=:\s])*)[ \t\f]*[=:]?[ \t\f]*(.*)$", line, re.S)
        assert match is not None
        result[unescape(match.group(1))] = unescape(match.group(2))
    return result


def make_theme(**changes: object) -> LoginTheme:
    theme = LoginTheme(
        name=themes.theme_name("bihar"),
        display_name="Bihar Karmayogi",
        logo=LOGO,
        logo_suffix=".svg",
        primary="#8B1E3F",
        accent="#F2A900",
        languages=("hi", "en", "mai"),
    )
    return dataclasses.replace(theme, **changes)  # type: ignore[arg-type]


def themes_jar(dist: Path) -> zipfile.ZipFile:
    jars = sorted((dist / "lib" / "lib" / "main").glob("org.keycloak.keycloak-themes-*.jar"))
    jars = [jar for jar in jars if "vendor" not in jar.name]
    assert jars, f"no keycloak-themes jar in {dist}"
    return zipfile.ZipFile(jars[0])


@pytest.fixture(params=list(BUNDLES))
def kind(request: pytest.FixtureRequest) -> str:
    """The theme type whose bundles a test checks: the login pages or the e-mails."""
    return str(request.param)


@pytest.fixture
def english(keycloak_dist: Path, kind: str) -> dict[str, str]:
    with themes_jar(keycloak_dist) as jar:
        bundle = parse_properties(jar.read(BUNDLES[kind][1]).decode("utf-8"))
    assert len(bundle) > BUNDLES[kind][2], "the English bundle did not parse"
    return bundle


@pytest.fixture
def hindi(kind: str) -> dict[str, str]:
    return parse_properties(BUNDLES[kind][0].read_text(encoding="utf-8"))


# --- names and validation ----------------------------------------------------------------


def test_theme_name_prefixes_the_tenant_code() -> None:
    assert themes.theme_name("bihar") == "karmayogi-bihar"
    assert themes.theme_name("karmayogi-bharat") == "karmayogi-karmayogi-bharat"


@pytest.mark.parametrize("code", ["", "Bihar", "../etc", "bihar/x", "-bihar", "bihar "])
def test_theme_name_refuses_codes_that_are_not_slugs(code: str) -> None:
    with pytest.raises(IdentityError):
        themes.theme_name(code)


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "keycloak.v2"},
        {"logo_suffix": ".gif"},
        {"logo": b""},
        {"primary": "red"},
        {"accent": "#f2a90"},
        {"primary": "#8b1e3f; } body { display: none"},
        {"languages": ()},
        {"languages": ("hi", "hi")},
        {"languages": ("hi", "en_US")},
    ],
)
def test_invalid_theme_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(IdentityError):
        make_theme(**changes)


# --- rendering ---------------------------------------------------------------------------


def test_render_is_deterministic_and_sorted() -> None:
    first = themes.render_theme(make_theme())
    assert first == themes.render_theme(make_theme())
    assert list(first) == sorted(first)
    assert all(not path.startswith("/") and ".." not in path for path in first)


def test_render_lays_out_a_keycloak_login_theme() -> None:
    files = themes.render_theme(make_theme())
    assert set(files) == {
        "login/theme.properties",
        "login/resources/css/karmayogi.css",
        "login/resources/img/logo.svg",
        "login/messages/messages_hi.properties",
        "login/messages/messages_en.properties",
        "login/messages/messages_mai.properties",
        "email/theme.properties",
        "email/messages/messages_hi.properties",
    }
    assert files["login/resources/img/logo.svg"] == LOGO
    png = themes.render_theme(make_theme(logo=b"\x89PNG\r\n", logo_suffix=".png"))
    assert png["login/resources/img/logo.png"] == b"\x89PNG\r\n"
    assert "login/resources/img/logo.svg" not in png


def test_theme_properties_extend_keycloak_v2() -> None:
    files = themes.render_theme(make_theme())
    props = parse_properties(files["login/theme.properties"].decode("ascii"))
    assert props["parent"] == "keycloak.v2"
    assert props["import"] == "common/keycloak"
    assert props["styles"].split() == ["css/styles.css", "css/karmayogi.css"]
    assert props["locales"] == "hi,en,mai"


def test_theme_keeps_the_parents_stylesheets_first(keycloak_dist: Path) -> None:
    with themes_jar(keycloak_dist) as jar:
        parent = parse_properties(jar.read(V2_THEME_PROPERTIES).decode("utf-8"))
    props = parse_properties(
        themes.render_theme(make_theme())["login/theme.properties"].decode("ascii")
    )
    parent_styles = parent["styles"].split()
    assert props["styles"].split()[: len(parent_styles)] == parent_styles
    assert "stylesCommon" not in props  # inherited from keycloak.v2 unchanged


def test_css_carries_the_colours_and_the_logo() -> None:
    css = themes.render_theme(make_theme())["login/resources/css/karmayogi.css"].decode()
    assert "--karmayogi-primary: #8b1e3f;" in css
    assert "--karmayogi-accent: #f2a900;" in css
    assert "--pf-v5-global--primary-color--100: var(--karmayogi-primary);" in css
    assert "--pf-v5-global--primary-color--dark-100: var(--karmayogi-primary);" in css
    assert "--keycloak-card-top-color: var(--karmayogi-accent);" in css
    assert 'url("../img/logo.svg")' in css
    assert "#kc-header-wrapper" in css
    assert "--karmayogi-on-primary: #ffffff;" in css  # light text on a dark primary


def test_css_uses_the_text_colour_it_is_given_on_a_light_primary() -> None:
    theme = make_theme(primary="#F2A900", on_primary="#000000")
    css = themes.render_theme(theme)["login/resources/css/karmayogi.css"]
    assert b"--karmayogi-on-primary: #000000;" in css


def test_display_name_cannot_break_out_of_the_css_comment() -> None:
    css = themes.render_theme(make_theme(display_name="Evil */ body { display: none } /*"))
    text = css["login/resources/css/karmayogi.css"].decode()
    assert text.index("*/") > text.index("Evil")
    assert "Evil * / body" in text


def test_only_the_tenants_languages_get_bundles() -> None:
    files = themes.render_theme(make_theme(languages=("en", "ta")))
    bundles = sorted(path for path in files if path.startswith("login/messages/"))
    assert bundles == [
        "login/messages/messages_en.properties",
        "login/messages/messages_ta.properties",
    ]


def test_kit_translation_is_copied_with_the_language_names() -> None:
    files = themes.render_theme(make_theme())
    rendered = files["login/messages/messages_hi.properties"]
    assert rendered.startswith(HI_BUNDLE.read_bytes().rstrip(b"\n"))
    hindi = parse_properties(rendered.decode("utf-8"))
    assert hindi["doLogIn"] == "साइन इन करें"
    assert hindi["locale_hi"] == "हिन्दी"
    names_only = parse_properties(files["login/messages/messages_mai.properties"].decode("utf-8"))
    assert set(names_only) == {key for key in hindi if key.startswith("locale_")}


def test_every_bundle_names_every_tenant_language_in_its_own_script() -> None:
    languages = ("hi", "en", "mai", "ur", "sat", "fr")
    files = themes.render_theme(make_theme(languages=languages))
    expected = {"hi": "हिन्दी", "en": "English", "mai": "मैथिली", "ur": "اردو", "sat": "ᱥᱟᱱᱛᱟᱲᱤ"}
    for tag in languages:
        bundle = parse_properties(files[f"login/messages/messages_{tag}.properties"].decode())
        for other, name in expected.items():
            assert bundle[f"locale_{other}"] == name, (tag, other)
        assert all(bundle[f"locale_{other}"] for other in languages)


def test_language_names_agree_with_the_kits_language_table() -> None:
    from infra.spec.languages import LANGUAGES

    names = parse_properties(
        (Path(themes.__file__).parent / "theme" / themes.LANGUAGE_NAMES_FILE).read_text("utf-8")
    )
    assert names == {f"locale_{code}": lang.native_name for code, lang in LANGUAGES.items()}


def test_bundled_locales_include_hindi() -> None:
    assert "hi" in themes.bundled_locales()
    assert themes.bundled_locales() == tuple(sorted(themes.bundled_locales()))


# --- writing, drift, removal -------------------------------------------------------------


def test_write_then_no_drift_and_second_write_changes_nothing(tmp_path: Path) -> None:
    theme = make_theme()
    assert themes.theme_drift(theme, tmp_path) == sorted(themes.render_theme(theme))
    assert themes.write_theme(theme, tmp_path) is True
    assert themes.theme_drift(theme, tmp_path) == []
    assert themes.write_theme(theme, tmp_path) is False
    written = {
        p.relative_to(tmp_path / theme.name).as_posix(): p.read_bytes()
        for p in (tmp_path / theme.name).rglob("*")
        if p.is_file()
    }
    assert written == themes.render_theme(theme)  # no temporary files left behind


def test_drift_shows_edited_missing_and_stray_files(tmp_path: Path) -> None:
    theme = make_theme()
    themes.write_theme(theme, tmp_path)
    root = tmp_path / theme.name
    (root / "login/resources/css/karmayogi.css").write_text("/* edited */")
    (root / "login/resources/img/logo.svg").unlink()
    (root / "login/resources/js").mkdir()
    (root / "login/resources/js/stray.js").write_text("alert(1)")
    assert themes.theme_drift(theme, tmp_path) == [
        "login/resources/css/karmayogi.css",
        "login/resources/img/logo.svg",
        "login/resources/js/stray.js",
    ]
    assert themes.write_theme(theme, tmp_path) is True
    assert themes.theme_drift(theme, tmp_path) == []
    assert not (root / "login/resources/js").exists()  # emptied folders go too


def test_changing_the_theme_rewrites_only_what_differs(tmp_path: Path) -> None:
    themes.write_theme(make_theme(), tmp_path)
    root = tmp_path / make_theme().name
    hi_before = (root / "login/messages/messages_hi.properties").stat().st_mtime_ns
    smaller = make_theme(languages=("hi", "en"), primary="#1f3c88")
    assert themes.theme_drift(smaller, tmp_path) == [
        "email/theme.properties",  # the e-mails' languages follow the tenant's too
        "login/messages/messages_mai.properties",
        "login/resources/css/karmayogi.css",
        "login/theme.properties",
    ]
    assert themes.write_theme(smaller, tmp_path) is True
    assert not (root / "login/messages/messages_mai.properties").exists()
    assert (root / "login/messages/messages_hi.properties").stat().st_mtime_ns == hi_before
    assert b"#1f3c88" in (root / "login/resources/css/karmayogi.css").read_bytes()


def test_written_files_are_world_readable(tmp_path: Path) -> None:
    theme = make_theme()
    themes.write_theme(theme, tmp_path)
    css = tmp_path / theme.name / "login/resources/css/karmayogi.css"
    assert css.stat().st_mode & 0o777 == 0o644


def test_a_directory_in_place_of_a_file_is_replaced(tmp_path: Path) -> None:
    theme = make_theme()
    (tmp_path / theme.name / "login/theme.properties").mkdir(parents=True)
    (tmp_path / theme.name / "login/theme.properties/x").write_text("x")
    assert "login/theme.properties" in themes.theme_drift(theme, tmp_path)
    themes.write_theme(theme, tmp_path)
    assert themes.theme_drift(theme, tmp_path) == []


def test_missing_themes_folder_is_all_drift_and_created_on_write(tmp_path: Path) -> None:
    theme = make_theme()
    folder = tmp_path / "not-yet" / "themes"
    assert themes.theme_drift(theme, folder) == sorted(themes.render_theme(theme))
    assert themes.write_theme(theme, folder) is True
    assert themes.theme_drift(theme, folder) == []


def test_themes_folder_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "themes").write_text("")
    with pytest.raises(IdentityError, match="not a folder"):
        themes.write_theme(make_theme(), tmp_path / "themes")


def test_remove_theme(tmp_path: Path) -> None:
    theme = make_theme()
    themes.write_theme(theme, tmp_path)
    (tmp_path / "keycloak.v2").mkdir()
    assert themes.remove_theme(theme.name, tmp_path) is True
    assert not (tmp_path / theme.name).exists()
    assert themes.remove_theme(theme.name, tmp_path) is False
    assert (tmp_path / "keycloak.v2").is_dir()


@pytest.mark.parametrize("name", ["keycloak.v2", "karmayogi-", "karmayogi-../x", "base"])
def test_remove_theme_refuses_themes_the_kit_does_not_own(tmp_path: Path, name: str) -> None:
    with pytest.raises(IdentityError, match="refusing"):
        themes.remove_theme(name, tmp_path)


# --- the Hindi bundle against Keycloak's English one ------------------------------------


def test_hindi_bundle_is_utf8_without_bom(kind: str) -> None:
    raw = BUNDLES[kind][0].read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    raw.decode("utf-8")


def test_hindi_bundle_has_every_english_key(english: dict[str, str], hindi: dict[str, str]) -> None:
    assert sorted(set(english) - set(hindi)) == []
    assert sorted(set(hindi) - set(english)) == []  # stale keys: Keycloak dropped them


def test_hindi_values_are_translated(english: dict[str, str], hindi: dict[str, str]) -> None:
    empty = [key for key in english if not hindi.get(key, "").strip()]
    assert empty == []
    same = [key for key in english if hindi.get(key) == english[key]]
    assert [english[key] for key in same if english[key] not in SAME_AS_ENGLISH] == []
    not_hindi = [
        key
        for key in english
        if english[key] not in SAME_AS_ENGLISH and not DEVANAGARI.search(hindi.get(key, ""))
    ]
    assert not_hindi == []


def test_hindi_keeps_placeholders_and_markup(
    english: dict[str, str], hindi: dict[str, str]
) -> None:
    def placeholders(value: str) -> Counter[str]:
        return Counter(m.group(1) or m.group(0) for m in PLACEHOLDER.finditer(value))

    def markup(value: str) -> Counter[str]:
        return Counter(MARKUP.findall(value))

    wrong = [
        key for key in english if placeholders(english[key]) != placeholders(hindi.get(key, ""))
    ]
    assert wrong == []
    assert [key for key in english if markup(english[key]) != markup(hindi.get(key, ""))] == []


def test_hindi_quotes_are_messageformat_safe(
    english: dict[str, str], hindi: dict[str, str]
) -> None:
    # MessageFormat reads a lone ' as the start of a quoted (unformatted) run, which would
    # swallow the placeholders after it. English doubles apostrophes ("Haven''t"); Hindi has
    # none, so the rule is: no lone quote, and a placeholder quoted in English stays quoted.
    lone = [key for key in hindi if "'" in hindi[key].replace("''", "")]
    assert lone == []
    requoted = [
        key
        for key in english
        if QUOTED_PLACEHOLDER.findall(english[key])
        != QUOTED_PLACEHOLDER.findall(hindi.get(key, ""))
    ]
    assert requoted == []
