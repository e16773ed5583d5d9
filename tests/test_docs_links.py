"""Every relative link in README.md and docs/ points at a file of the repository (a moved or renamed file breaks
the documentation silently otherwise)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    """The page's Markdown link and image targets that are paths in the repository (not URLs or anchors)."""
    return [target for target in LINK.findall(page.read_text(encoding="utf-8"))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")]


def test_the_pages_have_links_to_check() -> None:
    assert len(PAGES) > 5 and sum(len(relative_links(page)) for page in PAGES) > 20


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    missing = [target for target in relative_links(page) if not (page.parent / target.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_links_are_told_apart_from_urls_and_anchors(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[a](docs/a.md) ![plot](b.png) [web](https://example.org/x) [here](#section) "
                    "[mail](mailto:x@y.z) [part](c.md#heading)", encoding="utf-8")
    assert relative_links(page) == ["docs/a.md", "b.png", "c.md#heading"]
