"""Accessible colour pairs from a tenant's two brand colours (WCAG 2.1 contrast, 4.5:1).

The portal paints text on the primary and on the accent colour, and links in the primary
colour on white. For each pair the text is black or white, whichever contrasts more; where
neither reaches 4.5:1, the background is shaded (darkened under white text, lightened under
black) in small steps until it does, and a warning says so. Formulas: WCAG 2.1 §1.4.3,
"relative luminance" and "contrast ratio".
"""

from __future__ import annotations

from dataclasses import dataclass, field

AA_NORMAL_TEXT = 4.5
WHITE = "#ffffff"
BLACK = "#000000"


def _channels(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(max(0, min(255, c))):02x}" for c in rgb)


def relative_luminance(colour: str) -> float:
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _channels(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix(colour: str, towards: str, amount: float) -> str:
    start, end = _channels(colour), _channels(towards)
    mixed = tuple(s + (e - s) * amount for s, e in zip(start, end, strict=True))
    return _hex((mixed[0], mixed[1], mixed[2]))


def shade_until(background: str, text: str, target: float = AA_NORMAL_TEXT) -> str:
    """``background`` moved away from ``text`` just far enough to reach ``target``."""
    towards = BLACK if relative_luminance(text) > 0.5 else WHITE
    for step in range(101):
        candidate = _mix(background, towards, step / 100)
        if contrast(candidate, text) >= target:
            return candidate
    return towards


@dataclass(frozen=True)
class Pair:
    background: str
    text: str
    shaded: bool


def text_pair(background: str) -> Pair:
    """Black or white text on ``background``, shading it if neither reaches 4.5:1."""
    text = WHITE if contrast(background, WHITE) >= contrast(background, BLACK) else BLACK
    if contrast(background, text) >= AA_NORMAL_TEXT:
        return Pair(background, text, shaded=False)
    return Pair(shade_until(background, text), text, shaded=True)


@dataclass(frozen=True)
class Palette:
    primary: str
    on_primary: str
    accent: str
    on_accent: str
    link: str
    warnings: tuple[str, ...] = field(default=())


def accessible_palette(primary: str, accent: str) -> Palette:
    """The portal's colours from the spec's two, each text pair at 4.5:1 or better."""
    warnings: list[str] = []
    on_primary = text_pair(primary)
    on_accent = text_pair(accent)
    link = primary if contrast(primary, WHITE) >= AA_NORMAL_TEXT else shade_until(primary, WHITE)
    for name, given, pair in (("primary", primary, on_primary), ("accent", accent, on_accent)):
        if pair.shaded:
            warnings.append(
                f"colors.{name} {given}: text on it reaches only "
                f"{max(contrast(given, WHITE), contrast(given, BLACK)):.1f}:1; "
                f"the portal uses {pair.background} instead"
            )
    if link != primary:
        warnings.append(
            f"colors.primary {primary}: as link text on white it reaches only "
            f"{contrast(primary, WHITE):.1f}:1; links use {link} instead"
        )
    return Palette(
        primary=on_primary.background,
        on_primary=on_primary.text,
        accent=on_accent.background,
        on_accent=on_accent.text,
        link=link,
        warnings=tuple(warnings),
    )
