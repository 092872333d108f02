"""List the modules over 400 lines and the functions over 60 lines in services/ and shared/.

`python -m tools.sizes` (or `./dev sizes`) prints one line per piece that is too long, and exits
1 when any is left unexplained. A piece that must stay long says why in its docstring, in a
sentence that contains "is long because"; it is listed apart, with that reason, and does not
fail the check.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MODULE_LINES = 400
FUNCTION_LINES = 60
ROOTS = ("services", "shared")
MARKER = "is long because"


@dataclass(frozen=True)
class Long:
    where: str
    lines: int
    limit: int
    reason: str | None  # the docstring's sentence saying why, when it gives one


def _reason(doc: str | None) -> str | None:
    if not doc or MARKER not in doc:
        return None
    text = " ".join(doc.split())
    start = text.rfind(".", 0, text.index(MARKER)) + 1
    end = text.find(".", text.index(MARKER))
    return text[start : end + 1 if end >= 0 else None].strip()


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def scan(repo: Path) -> list[Long]:
    out: list[Long] = []
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            text = path.read_text()
            name = path.relative_to(repo).as_posix()
            tree = ast.parse(text, name)
            lines = len(text.splitlines())
            if lines > MODULE_LINES:
                out.append(Long(name, lines, MODULE_LINES, _reason(ast.get_docstring(tree))))
            for fn in _functions(tree):
                first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
                size = (fn.end_lineno or fn.lineno) - first + 1
                if size > FUNCTION_LINES:
                    where = f"{name}:{fn.lineno} {fn.name}()"
                    out.append(Long(where, size, FUNCTION_LINES, _reason(ast.get_docstring(fn))))
    return out


def main() -> int:
    found = scan(Path(__file__).resolve().parent.parent)
    unexplained = [f for f in found if f.reason is None]
    for f in unexplained:
        print(f"{f.where}: {f.lines} lines (limit {f.limit})")
    for f in found:
        if f.reason is not None:
            print(f"{f.where}: {f.lines} lines (limit {f.limit}), named exception: {f.reason}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
