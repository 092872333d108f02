"""Pages: the document's two templates (plain, and rows under a repeated column header) and
a canvas that numbers every page "N of M"."""

from __future__ import annotations

from typing import IO, Any

from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate

from services.audit.export_pdf._row import Row
from services.audit.export_pdf._style import FOOTER_GAP, GREY, MARGIN, PAGE, SANS, color_of


class NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped
    """Holds every page until the end so each footer can say "page N of M"."""

    generated = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for page in self._pages:
            self.__dict__.update(page)
            self._footer(total)
            super().showPage()
        super().save()

    def _footer(self, total: int) -> None:
        self.saveState()
        self.setFont(SANS, 7.5)
        self.setFillColor(color_of(GREY))
        y = MARGIN - FOOTER_GAP / 2
        self.drawString(MARGIN, y, f"proctrail audit report — generated {self.generated}")
        self.drawRightString(PAGE[0] - MARGIN, y, f"page {self._pageNumber} of {total}")
        self.restoreState()


def numbered_canvas(generated: str) -> type[NumberedCanvas]:
    """The canvas class for one report, its footers stamped with when it was generated."""

    class Numbered(NumberedCanvas):
        pass

    Numbered.generated = generated
    return Numbered


def report_template(
    buffer: IO[bytes], header: Row, *, title: str, subject: str
) -> tuple[BaseDocTemplate, float]:
    """The document, and the height left for rows below the column header on a page."""
    width = PAGE[0] - 2 * MARGIN
    bottom = MARGIN + FOOTER_GAP / 2
    height = PAGE[1] - MARGIN - bottom
    _, header_height = header.wrap(width, height)

    def column_header(canvas: Canvas, doc: BaseDocTemplate) -> None:
        header.drawOn(canvas, MARGIN, PAGE[1] - MARGIN - header_height)

    def frame(top_gap: float) -> Frame:
        return Frame(
            MARGIN, bottom, width, height - top_gap,
            leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0,
        )  # fmt: skip

    doc = BaseDocTemplate(
        buffer,
        pagesize=PAGE,
        pageTemplates=[
            PageTemplate("plain", [frame(0)]),
            PageTemplate("rows", [frame(header_height)], onPage=column_header),
        ],
        title=title,
        author="proctrail",
        subject=subject,
        creator="proctrail",
    )
    return doc, height - header_height
