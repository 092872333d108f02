"""The docs travel with the code: every link in the repository's Markdown stays inside it and
leads somewhere, and the README stays a newcomer's page.

Checked in every Markdown file git tracks (`git ls-files '*.md'`), outside fenced code blocks
and HTML comments:

- Links (`[text](target)`, `![alt](target)`, `[id]: target`, `<scheme:…>` and bare URLs):
  - a relative path must be a file or folder git tracks, and must not climb out of the
    repository; an anchor (`file.md#heading`, `#heading`) must name a heading of that file,
    as GitHub makes its anchors;
  - an absolute filesystem path, `file:` or any other scheme fails;
  - `http(s)` links are allowed to the public standards and project sites in PUBLIC_HOSTS and
    to this machine (the running apps' own pages); they are never fetched (no network here).
- Paths written as code (`services/imaging/store.py`, `shared/bus/`): a file name or a folder
  (a trailing `/`) whose first part is a tracked folder or file (at the top, or beside the
  document) must exist in full, unless it holds a placeholder (`<name>`, `*`, `|`, …) or
  git ignores it (generated files such as `deploy/secrets/`). A code path that climbs out of
  the repository, or names the folder the checkout sits in by its absolute path (a sibling
  checkout, a shared handbook), fails.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]

# Public standards and project sites a doc may link to (RFCs, DICOM, C2SP, HL7, regulations).
PUBLIC_HOSTS = frozenset(
    {
        "www.rfc-editor.org",
        "datatracker.ietf.org",
        "dicom.nema.org",
        "c2sp.org",
        "hl7.org",
        "www.hl7.org",
        "www.ecfr.gov",
        "health.ec.europa.eu",
        "www.ncrponline.org",
        "ctep.cancer.gov",
        "www.isbt128.org",
    }
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

README_MAX_LINES = 200
PLACEHOLDER = re.compile(r"[\s<>*{}\[\]|$?=,;()'\"\\]")

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.DOTALL)
_INLINE_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]*:[^>\s]*)>")
_BARE_URL = re.compile(r"(?<![(<\w])(https?://[^\s)>\]]+)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Problem:
    doc: str
    target: str
    why: str

    def __str__(self) -> str:
        return f"{self.doc}: {self.target!r} {self.why}"


# --- what git knows -------------------------------------------------------------------------


def _git(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], input=stdin, capture_output=True, text=True, check=False
    )


@cache
def tracked() -> frozenset[str]:
    """Every tracked file (the index, so a staged move counts), and every folder holding one."""
    out = _git("ls-files", "-z")
    assert out.returncode == 0, out.stderr
    files = {f for f in out.stdout.split("\0") if f}
    folders = {str(p) for f in files for p in PurePosixPath(f).parents if str(p) != "."}
    return frozenset(files | folders)


def exists(relative: str) -> bool:
    """Tracked, and on disk in this checkout."""
    path = relative.rstrip("/") or "."
    return path == "." or (path in tracked() and (REPO / path).exists())


def ignored(relative: str) -> bool:
    return _git("check-ignore", "-q", "--no-index", relative).returncode == 0


def markdown_files() -> list[str]:
    out = _git("ls-files", "-z", "--", "*.md")
    assert out.returncode == 0, out.stderr
    return sorted(f for f in out.stdout.split("\0") if f and (REPO / f).is_file())


# --- reading Markdown ----------------------------------------------------------------------


def prose(text: str) -> str:
    """The text without fenced code blocks and HTML comments (kept as blank lines)."""
    out, fence = [], None
    for line in _COMMENT.sub(lambda m: "\n" * m.group().count("\n"), text).splitlines():
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)[0] * 3
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation gone, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = unicodedata.normalize("NFC", text.strip().lower())
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


@cache
def anchors(relative: str) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose((REPO / relative).read_text(encoding="utf-8")).splitlines():
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return frozenset(out)


def _inside(doc: str, target: str) -> str | None:
    """`target`, relative to `doc`'s folder, as a path from the repository's top; None when it
    climbs out of the repository."""
    parts: list[str] = []
    for part in (*PurePosixPath(doc).parent.parts, *PurePosixPath(target).parts):
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts) or "."


# --- the checks -----------------------------------------------------------------------------


def check_link(doc: str, target: str) -> str | None:
    """Why a link target is wrong, or None."""
    if not target:
        return "is an empty link"
    if target.startswith("#"):
        return None if unquote(target[1:]) in anchors(doc) else "names no heading of this file"
    if _SCHEME.match(target):
        url = urlsplit(target)
        if url.scheme not in ("http", "https"):
            return f"uses the {url.scheme}: scheme (only http(s) links may leave the repository)"
        host = url.hostname or ""
        if host in LOOPBACK_HOSTS or host in PUBLIC_HOSTS:
            return None
        return f"goes to {host}, which is not a public standard's site in PUBLIC_HOSTS"
    if target.startswith(("/", "~", "\\")):
        return "is an absolute path: link within the repository, relative to this file"
    path, _, anchor = target.partition("#")
    path = unquote(path.split("?", 1)[0])
    where = _inside(doc, path)
    if where is None:
        return "climbs out of the repository"
    if not exists(where):
        return f"leads to {where}, which git does not track"
    if anchor and where.endswith(".md") and unquote(anchor) not in anchors(where):
        return f"names no heading of {where}"
    return None


def check_code_path(doc: str, span: str) -> str | None:
    """Why a path written as code is wrong, or None (also when it is not a repository path)."""
    text = span.strip().split("::", 1)[0].split("#", 1)[0]
    if not text or PLACEHOLDER.search(text) or _SCHEME.match(text):
        return None
    if text.startswith("/"):
        outside = REPO.parent
        if Path(text) == outside or outside in Path(text).parents:
            return f"names {outside} by its absolute path: a reader's clone has no such folder"
        return None  # an HTTP route, or a path on a deployed host (/etc/proctrail, …)
    if "/" not in text:
        return None
    if not text.endswith("/") and "." not in PurePosixPath(text).name and not exists(text):
        return None  # neither a file name nor a folder: a value such as proctrail/audit
    first = text.removeprefix("./").split("/", 1)[0]
    beside = _inside(doc, first)
    roots = [r for r in (first, beside) if r is not None and r != "." and exists(r)]
    if text.startswith("../"):
        where = _inside(doc, text)
        if where is None:
            return "climbs out of the repository"
        return None if exists(where) or ignored(where) else f"{where} is not tracked"
    if not roots:
        return None  # not a repository path (a data-dir path, a unit such as mcg/ug, …)
    candidates = [text.removeprefix("./")]
    if beside is not None:
        candidates.append(_inside(doc, text.removeprefix("./")) or "")
    if any(c and (exists(c) or ignored(c)) for c in candidates):
        return None
    return "is written as a repository path, but git tracks no such file or folder"


def problems(doc: str, text: str) -> list[Problem]:
    body = prose(text)
    spans = [m.group(2) for m in _CODE_SPAN.finditer(body)]
    plain = _CODE_SPAN.sub(lambda m: " " * len(m.group()), body)
    targets = [m.group(1) for m in _INLINE_LINK.finditer(plain)]
    targets += [m.group(1) for m in _REFERENCE.finditer(plain)]
    targets += [m.group(1) for m in _AUTOLINK.finditer(plain)]
    bare = _INLINE_LINK.sub(" ", _AUTOLINK.sub(" ", plain))
    targets += [m.group(1).rstrip(".,;:") for m in _BARE_URL.finditer(bare)]
    found = [Problem(doc, t, why) for t in targets if (why := check_link(doc, t))]
    found += [Problem(doc, s, why) for s in spans if (why := check_code_path(doc, s))]
    return found


# --- the tests ------------------------------------------------------------------------------


def test_the_repository_has_markdown_docs() -> None:
    docs = markdown_files()
    assert "README.md" in docs
    assert "docs/architecture.md" in docs
    assert "docs/contract.md" in docs


@pytest.mark.parametrize("doc", markdown_files())
def test_every_link_stays_in_the_repository_and_leads_somewhere(doc: str) -> None:
    found = problems(doc, (REPO / doc).read_text(encoding="utf-8"))
    assert not found, "\n".join(map(str, found))


def test_the_readme_is_a_newcomers_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert "./dev up" in readme
    assert "./dev test" in readme


def test_the_readme_leads_to_every_page_in_docs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {m.group(1).partition("#")[0] for m in _INLINE_LINK.finditer(prose(readme))}
    pages = {d for d in markdown_files() if d.startswith("docs/")}
    assert pages <= linked, f"not linked from README.md: {sorted(pages - linked)}"


# --- the checker itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("the [contract](../shared/handbook/contract.md)", "climbs out of the repository"),
        ("see [it](/work/shared/handbook/contract.md)", "is an absolute path"),
        ("see [it](file:///opt/proctrail/deploy/README.md)", "uses the file: scheme"),
        ("a [page](no-such-page.md)", "which git does not track"),
        ("the [flow](README.md#no-such-heading)", "names no heading of README.md"),
        ("a [blog](https://blog.example.com/post)", "not a public standard's site"),
        ("written as `../shared/handbook/contract.md`", "climbs out of the repository"),
        ("written as `shared/no_such_module.py`", "git tracks no such file"),
    ],
)
def test_the_checker_finds_a_link_that_leads_nowhere(text: str, why: str) -> None:
    found = problems("README.md", text)
    assert [why in p.why for p in found] == [True], found


def test_the_checker_names_a_sibling_folder_written_as_code() -> None:
    sibling = REPO.parent / "shared" / "handbook" / "contract.md"
    found = problems("README.md", f"see `{sibling}`")
    assert len(found) == 1
    assert "absolute path" in found[0].why


@pytest.mark.parametrize(
    "text",
    [
        "the [flow](README.md#how-it-flows) and [docs](docs/) and [back](#who-it-is-for)",
        "[RFC 9162](https://www.rfc-editor.org/rfc/rfc9162) and <http://127.0.0.1:8080/>",
        "`services/imaging/` and `var/imaging/objects/<xx>/<uid>.dcm` and `/v1/audit/entries`",
        "`tests/unit/test_<module>.py::test_<behaviour>` and `deploy/secrets/` and `mcg/ug`",
        "```\n[not a link](../outside.md)\n```",
        "<!-- [not a link](../outside.md) -->",
    ],
)
def test_the_checker_lets_good_links_and_other_code_pass(text: str) -> None:
    assert problems("README.md", text) == []
