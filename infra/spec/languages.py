"""The languages a tenant may switch on, keyed by the BCP 47 tag the whole kit uses.

Tags are the plain language subtags Keycloak and Django both accept as locale names (no
script or region subtags), so one tag names a language in the spec, the realm, the portal
and the federation records alike. Native names follow the Unicode CLDR autonyms.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    """One language: its tag, its name in English and in itself, and how it is written."""

    code: str
    english_name: str
    native_name: str
    script: str  # ISO 15924 code of the script the kit serves it in
    rtl: bool = False


def _table(*languages: Language) -> dict[str, Language]:
    return {language.code: language for language in languages}


# The 22 languages of the Eighth Schedule to the Constitution of India, in tag order.
# Manipuri is served in Bengali script (CLDR's default for `mni`); Kashmiri and Sindhi in
# Perso-Arabic script, which is why they, like Urdu, are right-to-left.
SCHEDULED_LANGUAGES: dict[str, Language] = _table(
    Language("as", "Assamese", "অসমীয়া", "Beng"),
    Language("bn", "Bengali", "বাংলা", "Beng"),
    Language("brx", "Bodo", "बर\u2019", "Deva"),
    Language("doi", "Dogri", "डोगरी", "Deva"),
    Language("gu", "Gujarati", "ગુજરાતી", "Gujr"),
    Language("hi", "Hindi", "हिन्दी", "Deva"),
    Language("kn", "Kannada", "ಕನ್ನಡ", "Knda"),
    Language("ks", "Kashmiri", "کٲشُر", "Arab", rtl=True),
    Language("kok", "Konkani", "कोंकणी", "Deva"),
    Language("mai", "Maithili", "मैथिली", "Deva"),
    Language("ml", "Malayalam", "മലയാളം", "Mlym"),
    Language("mni", "Manipuri", "মৈতৈলোন্", "Beng"),
    Language("mr", "Marathi", "मराठी", "Deva"),
    Language("ne", "Nepali", "नेपाली", "Deva"),
    Language("or", "Odia", "ଓଡ଼ିଆ", "Orya"),
    Language("pa", "Punjabi", "ਪੰਜਾਬੀ", "Guru"),
    Language("sa", "Sanskrit", "संस्कृतम्", "Deva"),
    Language("sat", "Santali", "ᱥᱟᱱᱛᱟᱲᱤ", "Olck"),
    Language("sd", "Sindhi", "سنڌي", "Arab", rtl=True),
    Language("ta", "Tamil", "தமிழ்", "Taml"),
    Language("te", "Telugu", "తెలుగు", "Telu"),
    Language("ur", "Urdu", "اردو", "Arab", rtl=True),
)

# English, and the languages governments adopting the framework abroad most often need.
OTHER_LANGUAGES: dict[str, Language] = _table(
    Language("en", "English", "English", "Latn"),
    Language("am", "Amharic", "አማርኛ", "Ethi"),
    Language("ar", "Arabic", "العربية", "Arab", rtl=True),
    Language("de", "German", "Deutsch", "Latn"),
    Language("es", "Spanish", "español", "Latn"),
    Language("fa", "Persian", "فارسی", "Arab", rtl=True),
    Language("fr", "French", "français", "Latn"),
    Language("id", "Indonesian", "Indonesia", "Latn"),
    Language("ms", "Malay", "Melayu", "Latn"),
    Language("nl", "Dutch", "Nederlands", "Latn"),
    Language("pt", "Portuguese", "português", "Latn"),
    Language("ru", "Russian", "русский", "Cyrl"),
    Language("si", "Sinhala", "සිංහල", "Sinh"),
    Language("sw", "Swahili", "Kiswahili", "Latn"),
    Language("th", "Thai", "ไทย", "Thai"),
    Language("vi", "Vietnamese", "Tiếng Việt", "Latn"),
)

LANGUAGES: dict[str, Language] = {**SCHEDULED_LANGUAGES, **OTHER_LANGUAGES}
