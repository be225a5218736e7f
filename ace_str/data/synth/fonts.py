"""Find fonts that really draw every symbol the synthetic renderer may ask for.

A font is only useful for training if each symbol renders as itself: TeX fonts such as cmsy10 or
cmex10 map ``a`` to a math symbol, and fonts like LastResort or the STIX size variants map every
character to one placeholder or to nothing. Training on those would teach wrong labels, so each
candidate is checked through its cmap, its glyph names and an actual PIL rendering.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib import ft2font
from PIL import ImageFont

from ace_str.data.charset import Charset

logger = logging.getLogger(__name__)

FONT_SUFFIXES = (".ttf", ".otf")
SYSTEM_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
)

# PostScript glyph names each ASCII symbol may carry in a font that draws it as itself; a font
# whose glyph for "<" is called "exclamdown" (cmr10) or for "a" "turnstileright" (cmsy10) lies.
_DIGIT_NAMES = "zero one two three four five six seven eight nine".split()
_PUNCT_NAMES = {
    "!": {"exclam"},
    '"': {"quotedbl"},
    "#": {"numbersign"},
    "$": {"dollar"},
    "%": {"percent"},
    "&": {"ampersand"},
    "'": {"quotesingle", "quoteright"},
    "(": {"parenleft"},
    ")": {"parenright"},
    "*": {"asterisk"},
    "+": {"plus"},
    ",": {"comma"},
    "-": {"hyphen", "minus", "uni002D"},
    ".": {"period"},
    "/": {"slash"},
    ":": {"colon"},
    ";": {"semicolon"},
    "<": {"less"},
    "=": {"equal"},
    ">": {"greater"},
    "?": {"question"},
    "@": {"at"},
    "[": {"bracketleft"},
    "\\": {"backslash"},
    "]": {"bracketright"},
    "^": {"asciicircum"},
    "_": {"underscore"},
    "`": {"grave", "quoteleft"},
    "{": {"braceleft"},
    "|": {"bar"},
    "}": {"braceright"},
    "~": {"asciitilde"},
}
EXPECTED_GLYPH_NAMES: dict[str, set[str]] = {
    **{c: {c} for c in string.ascii_letters},
    **{d: {name} for d, name in zip(string.digits, _DIGIT_NAMES, strict=True)},
    **_PUNCT_NAMES,
}

# matplotlib >= 3.10 exposes face flags as an enum; older versions give FreeType's plain int.
_HAS_GLYPH_NAMES = getattr(getattr(ft2font, "FaceFlags", None), "GLYPH_NAMES", 1 << 9)


class FontError(RuntimeError):
    """Too few usable fonts; the message lists every folder searched and what it held."""


@dataclass
class _DirReport:
    folder: Path
    found: int = 0
    rejected: int = 0
    duplicates: int = 0


def default_font_dirs() -> list[Path]:
    """Matplotlib's bundled fonts (always present) followed by the usual system folders."""
    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [bundled, *(Path(d).expanduser() for d in SYSTEM_FONT_DIRS)]


def required_symbols(charset: Charset | None) -> str:
    """Symbols a font must draw: the charset's, plus upper case when labels are case-folded,
    because the word sampler renders upper- and title-case text for such charsets."""
    if charset is None:
        return string.digits + string.ascii_letters
    symbols = list(charset.symbols)
    if charset.lowercase:
        symbols += [s.upper() for s in charset.symbols if s.upper() != s and len(s.upper()) == 1]
    return "".join(dict.fromkeys(symbols))


def font_problem(path: Path, symbols: str, distinct_case: bool = False) -> str | None:
    """Why the font cannot render ``symbols`` faithfully, or None if it can. With
    ``distinct_case`` (labels keep case) a font that draws lower case as capitals, such as the
    all-caps Bebas Neue, is rejected too: its "a" would be read "A"."""
    try:
        face = ft2font.FT2Font(str(path))
        pil_font = ImageFont.truetype(str(path), 24)
    except (OSError, RuntimeError, ValueError) as err:
        return f"unreadable ({err})"
    cmap = face.get_charmap()
    missing = [s for s in symbols if cmap.get(ord(s), 0) == 0]
    if missing:
        return f"no glyph for {''.join(missing[:20])!r}"
    visible = [s for s in symbols if not s.isspace()]
    glyphs = {s: cmap[ord(s)] for s in visible}
    if len(set(glyphs.values())) < len(glyphs):
        return "several symbols share one glyph"
    if face.face_flags & _HAS_GLYPH_NAMES:
        wrong = [
            f"{s}->{face.get_glyph_name(g)}"
            for s, g in glyphs.items()
            if s in EXPECTED_GLYPH_NAMES and face.get_glyph_name(g) not in EXPECTED_GLYPH_NAMES[s]
        ]
        if wrong:
            return f"glyphs are other symbols ({', '.join(wrong[:5])})"
    notdef_mask = pil_font.getmask("\uffff")  # U+FFFF is a noncharacter: always notdef
    notdef = (notdef_mask.size, bytes(notdef_mask))
    for s in visible:
        mask = pil_font.getmask(s)
        if mask.getbbox() is None or (mask.size, bytes(mask)) == notdef:
            return f"symbol {s!r} renders blank or as the missing-glyph box"
    if distinct_case:
        pairs = [(s, s.upper()) for s in visible if s.islower() and s.upper() in glyphs]
        masks = {s: pil_font.getmask(s) for pair in pairs for s in pair}
        same = sum(
            (masks[a].size, bytes(masks[a])) == (masks[b].size, bytes(masks[b])) for a, b in pairs
        )
        if pairs and 2 * same > len(pairs):
            return f"draws lower case as capitals ({same} of {len(pairs)} letters)"
    return None


def find_fonts(
    extra_dirs: list[str] | None = None,
    charset: Charset | None = None,
    min_fonts: int = 1,
    families: Sequence[str] | None = None,
) -> list[Path]:
    """Sorted usable font files for ``charset`` (default: ASCII letters and digits).

    One file per (family, style) is kept, so a family installed twice is not sampled twice as
    often. A charset that keeps case also rejects all-caps fonts. ``families`` keeps only fonts
    whose family name matches one of its shell patterns (case-insensitive, e.g. "DejaVu*"): a
    narrower, easier font set for short runs. The scan is cached per (folders, symbols, case);
    raises FontError if fewer than ``min_fonts`` remain.
    """
    extra = tuple(str(Path(d).expanduser()) for d in extra_dirs or ())
    symbols = required_symbols(charset)
    distinct_case = charset is not None and not charset.lowercase
    found, reports = _scan_fonts(extra, symbols, distinct_case)
    patterns = [p.lower() for p in families or ()]
    fonts = [
        path
        for path, family in found
        if not patterns or any(fnmatch.fnmatchcase(family.lower(), p) for p in patterns)
    ]
    if patterns:
        logger.info(
            "font_families %s: %d of %d usable fonts", list(families), len(fonts), len(found)
        )
    if len(fonts) < min_fonts:
        lines = "\n".join(
            f"  {r.folder}: "
            + (
                f"{r.found} found, {r.rejected} rejected, {r.duplicates} duplicate"
                if r.folder.is_dir()
                else "missing"
            )
            for r in reports
        )
        raise FontError(
            f"found {len(fonts)} usable font(s), need at least {min_fonts}; every symbol of "
            f"{symbols!r} must render"
            + (f" and the family match one of {list(families)}" if patterns else "")
            + f". Folders searched:\n{lines}\n"
            "Add a folder of .ttf/.otf fonts with font_dirs=[...] (or --font-dir)."
        )
    return fonts


@functools.lru_cache(maxsize=32)
def _scan_fonts(
    extra_dirs: tuple[str, ...], symbols: str, distinct_case: bool = False
) -> tuple[tuple[tuple[Path, str], ...], tuple[_DirReport, ...]]:
    """Check every font once per process; opening ~60 fonts takes about half a second."""
    reports = tuple(_DirReport(d) for d in (*default_font_dirs(), *map(Path, extra_dirs)))
    usable: dict[tuple[str, str], Path] = {}
    seen: set[Path] = set()
    for report in reports:
        if not report.folder.is_dir():
            continue
        files = sorted(p for p in report.folder.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
        for path in files:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            report.found += 1
            problem = font_problem(path, symbols, distinct_case)
            if problem is not None:
                report.rejected += 1
                logger.debug("rejected font %s: %s", path, problem)
                continue
            face = ft2font.FT2Font(str(path))
            key = (face.family_name, face.style_name)
            if key in usable:
                report.duplicates += 1
                continue
            usable[key] = path
    logger.info("%d usable fonts for %d symbols", len(usable), len(symbols))
    fonts = sorted((path, family) for (family, _), path in usable.items())
    return tuple(fonts), reports
