"""Every link of the README and docs/ leads somewhere, and every `docs/<page>.md#anchor` a file
of the repository names is a heading of that page.

Anchors are made as GitHub makes them from a heading: lower case, punctuation other than `-` and
`_` dropped, spaces turned into `-`, and `-1`, `-2`, … added to repeated ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
# Where a file may name a page's anchor: everything the repository keeps as text of its own.
SCANNED_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".mjs", ""}
SKIPPED_DIRECTORIES = {".git", ".venv", ".tools", "build", "node_modules", "__pycache__"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCS_ANCHOR = re.compile(r"docs/([a-z0-9_-]+\.md)#([A-Za-z0-9_-]+)")


def prose_lines(markdown: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of everything outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a page."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(markdown):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def page_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def links() -> list[tuple[str, int, str]]:
    """(page, line, target) of every link from a page to a file or anchor of this repository."""
    found = []
    for path in PAGES:
        for number, line in prose_lines(path.read_text()):
            for target in LINK.findall(line):
                if not re.match(r"^[a-z]+:", target):
                    found.append((page_name(path), number, target))
    return found


@pytest.mark.parametrize(
    ("page", "line", "target"), links(), ids=lambda value: str(value).replace(" ", "_")
)
def test_a_link_leads_to_a_file_and_heading(page: str, line: int, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    destination = (ROOT / page).parent / file_part if file_part else ROOT / page
    assert destination.resolve().exists(), f"{page}:{line}: {target} names no file"
    if anchor:
        assert anchor in anchors(destination.read_text()), f"{page}:{line}: no heading #{anchor}"


def repository_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*")):
        parts = set(path.relative_to(ROOT).parts)
        if parts & SKIPPED_DIRECTORIES or not path.is_file():
            continue
        if path.suffix in SCANNED_SUFFIXES and path.stat().st_size < 1_000_000:
            yield path


def test_every_anchor_named_in_the_repository_exists() -> None:
    pages = {path.name: anchors(path.read_text()) for path in PAGES[1:]}
    missing = []
    for path in repository_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for page, anchor in DOCS_ANCHOR.findall(text):
            if anchor not in pages.get(page, set()):
                missing.append(f"{page_name(path)}: docs/{page}#{anchor}")
    assert not missing, "anchors that no heading makes:\n" + "\n".join(missing)


def test_every_page_says_what_a_reader_comes_for() -> None:
    """A page opens with its title and then one or two sentences, not with a list or a table."""
    for path in PAGES[1:]:
        lines = path.read_text().splitlines()
        assert lines[0].startswith("# "), f"{page_name(path)} does not start with a title"
        first = next(line for line in lines[1:] if line.strip())
        assert first[0].isalpha(), f"{page_name(path)} opens with {first!r}, not a sentence"


def test_the_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
