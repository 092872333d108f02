"""The report's look: page, fonts (Bitstream Vera, shipped with reportlab) and colours, and
text made printable in those fonts."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

SANS = "ProctrailSans"
BOLD = "ProctrailSans-Bold"
MONO = "Courier"  # the signed note is ASCII but for its em dash, which Courier has
PAGE = landscape(A4)
MARGIN = 12 * mm
FOOTER_GAP = 8 * mm
FONT_SIZE = 7.5
LEADING = 9.2
PAD = 3.0  # points inside each cell
BLACK = "#111827"
RED = "#b91c1c"
GREEN = "#15803d"
AMBER = "#b45309"
GREY = "#555555"
WHITE = "#ffffff"
SHADES = ("#ffffff", "#f3f4f6")
GRID = "#9ca3af"
HEADER_SHADE = "#1f2937"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@lru_cache(maxsize=1)
def register_fonts() -> frozenset[int]:
    """Register Vera (regular, bold, italic) once; return the code points it can print."""
    folder = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
    faces = {
        SANS: "Vera.ttf",
        BOLD: "VeraBd.ttf",
        f"{SANS}-Italic": "VeraIt.ttf",
        f"{SANS}-BoldItalic": "VeraBI.ttf",
    }
    fonts = {name: TTFont(name, os.path.join(folder, file)) for name, file in faces.items()}
    for font in fonts.values():
        pdfmetrics.registerFont(font)
    pdfmetrics.registerFontFamily(
        SANS, normal=SANS, bold=BOLD, italic=f"{SANS}-Italic", boldItalic=f"{SANS}-BoldItalic"
    )
    return frozenset(fonts[SANS].face.charToGlyph)


def clean_text(text: str) -> str:
    """Printable in Vera: control characters and glyphs it lacks become `?`."""
    text = _CONTROL.sub("?", text)
    if text.isascii():
        return text
    printable = register_fonts()
    return "".join(c if ord(c) in printable or c == "\n" else "?" for c in text)


def para_text(value: Any) -> str:
    """Text for a Paragraph: printable and XML-escaped."""
    return escape(clean_text(str(value)))


@lru_cache(maxsize=64)
def color_of(hex_color: str) -> colors.Color:
    return colors.HexColor(hex_color)


def paragraph_styles() -> dict[str, ParagraphStyle]:
    register_fonts()
    return {
        "title": ParagraphStyle("title", fontName=BOLD, fontSize=16, leading=20),
        "h2": ParagraphStyle(
            "h2", fontName=BOLD, fontSize=13, leading=17, spaceBefore=10, spaceAfter=4
        ),
        "body": ParagraphStyle("body", fontName=SANS, fontSize=9, leading=12, spaceAfter=4),
        "mono": ParagraphStyle("mono", fontName=MONO, fontSize=8.5, leading=10.5),
    }
