"""Every relative link in README.md and docs/*.md points at a file that exists, and
every ``#anchor`` at a heading of the target page (GitHub's heading ids)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:


def _prose(text: str) -> str:
    """The page without fenced code blocks and code spans (links there are not links)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def heading_ids(text: str) -> set[str]:
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces to
    hyphens, ``-1``, ``-2`` … appended to repeats."""
    ids: set[str] = set()
    seen: dict[str, int] = {}
    for title in _HEADING.findall(_FENCE.sub("", text)):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link keeps its text
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids


def links(page: Path) -> list[str]:
    return _LINK.findall(_prose(page.read_text(encoding="utf-8")))


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of ``page`` whose file or anchor does not exist (paths shown
    relative to ``root``)."""
    broken = []
    for target in links(page):
        if _EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        if path_part.startswith("/"):
            broken.append(f"{target} (absolute: links must be relative)")
            continue
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target} (no file {os.path.relpath(dest, root)})")
            continue
        page_ids = heading_ids(dest.read_text(encoding="utf-8")) if dest.suffix == ".md" else None
        if anchor and page_ids is not None and unquote(anchor) not in page_ids:
            broken.append(f"{target} (no heading #{anchor} in {os.path.relpath(dest, root)})")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_readme_links_every_docs_page() -> None:
    readme = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    missing = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in readme]
    assert missing == []


def test_heading_ids_follow_github() -> None:
    """Hand-written ids, as GitHub renders them for these headings."""
    text = (
        "# Tally\n## The two commands\n## Exact AUC (`metrics.auc: exact`)\n"
        "## Faults, reruns and safety\n## Slices\n### Slices\n```\n# not a heading\n```\n"
    )
    assert heading_ids(text) == {
        "tally",
        "the-two-commands",
        "exact-auc-metricsauc-exact",
        "faults-reruns-and-safety",
        "slices",
        "slices-1",
    }


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n## Known\n")
    page.write_text(
        "[ok](other.md#known) [file](missing.md) [anchor](other.md#unknown) "
        "[self](#nowhere) [web](https://example.com/x) `[code](missing.md)`\n"
        "```\n[fenced](missing.md)\n```\n"
    )
    assert [b.split(" ")[0] for b in broken_links(page, tmp_path)] == [
        "missing.md",
        "other.md#unknown",
        "#nowhere",
    ]
