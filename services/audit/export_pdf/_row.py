"""A table row drawn as plain lines of text (one font and colour per line), wrapped to its
column and split across pages when it must."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import Flowable

from services.audit.export_pdf._style import (
    BLACK,
    FONT_SIZE,
    GREY,
    GRID,
    LEADING,
    PAD,
    SANS,
    clean_text,
    color_of,
)


@dataclass(frozen=True)
class Line:
    text: str
    font: str = SANS
    color: str = BLACK


Cell = list[Line]


@lru_cache(maxsize=65536)
def _width(text: str, font: str) -> float:
    """Widths add up glyph by glyph (TrueType, no kerning), so words are measured once."""
    return float(pdfmetrics.stringWidth(text, font, FONT_SIZE))


def _wrap(line: Line, width: float) -> list[Line]:
    """Break at newlines, at spaces where it can, inside a word where it must."""
    text = clean_text(line.text.replace("\t", " "))
    if "\n" in text:
        return [
            part
            for piece in text.split("\n")
            for part in _wrap(Line(piece, line.font, line.color), width)
        ]
    font = line.font
    space = _width(" ", font)
    out: list[str] = []
    current: list[str] = []
    used = 0.0
    for word in text.split(" "):
        size = _width(word, font) if len(word) < 64 else _measure(word, font)
        if current and used + space + size <= width:
            current.append(word)
            used += space + size
            continue
        if current:
            out.append(" ".join(current))
        while size > width:
            cut = _fit(word, font, width)
            out.append(word[:cut])
            word = word[cut:]
            size = _measure(word, font)
        current, used = [word], size
    out.append(" ".join(current))
    return [Line(part, font, line.color) for part in out]


def _measure(text: str, font: str) -> float:
    """Width of a long word, not cached."""
    return float(pdfmetrics.stringWidth(text, font, FONT_SIZE))


def _fit(word: str, font: str, width: float) -> int:
    """How many leading characters of `word` fit in `width` (at least one)."""
    low, high = 1, len(word)
    while low < high:
        mid = (low + high + 1) // 2
        if _measure(word[:mid], font) <= width:
            low = mid
        else:
            high = mid - 1
    return low


class Row(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """One table row drawn straight onto the canvas; splits between lines if it must."""

    def __init__(
        self, cells: list[Cell], widths: list[float], shade: str, split_min: float = 0.0
    ) -> None:
        super().__init__()
        self.cells = cells
        self.widths = widths
        self.shade = shade
        self.split_min = split_min
        self._lines: list[list[Line]] | None = None

    def _layout(self) -> list[list[Line]]:
        if self._lines is None:
            self._lines = [
                [part for line in cell for part in _wrap(line, width - 2 * PAD)]
                for cell, width in zip(self.cells, self.widths, strict=True)
            ]
            self.height = max(len(c) for c in self._lines) * LEADING + 2 * PAD
            self.width = sum(self.widths)
        return self._lines

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        self._layout()
        return self.width, self.height

    def split(self, aW: float, aH: float) -> list[Flowable]:
        lines = self._layout()
        fit = int((aH - 2 * PAD) // LEADING)
        if self.height <= aH or aH < self.split_min or fit < 1:
            return []
        first = [c[:fit] for c in lines]
        rest = [c[fit:] for c in lines]
        rest[4] = [Line("(continued)", SANS, GREY), *rest[4]]
        return [self._part(first), self._part(rest)]

    def _part(self, lines: list[list[Line]]) -> Row:
        part = Row([[]] * len(lines), self.widths, self.shade, self.split_min)
        part._lines = lines
        part.height = max(max(len(c) for c in lines), 1) * LEADING + 2 * PAD
        part.width = self.width
        return part

    def draw(self) -> None:
        canvas = self.canv
        lines = self._layout()
        height = self.height
        canvas.saveState()
        canvas.setFillColor(color_of(self.shade))
        canvas.setStrokeColor(color_of(GRID))
        canvas.setLineWidth(0.25)
        canvas.rect(0, 0, self.width, height, stroke=1, fill=1)
        edges = [sum(self.widths[:i]) for i in range(1, len(self.widths))]
        canvas.lines([(x, 0, x, height) for x in edges])
        x = 0.0
        top = height - PAD - FONT_SIZE * 0.8
        for cell, width in zip(lines, self.widths, strict=True):
            if cell:
                text = canvas.beginText(x + PAD, top)
                font = color = ""
                for line in cell:
                    if line.font != font:
                        font = line.font
                        text.setFont(font, FONT_SIZE, LEADING)
                    if line.color != color:
                        color = line.color
                        text.setFillColor(color_of(color))
                    text.textLine(line.text)
                canvas.drawText(text)
            x += width
        canvas.restoreState()
