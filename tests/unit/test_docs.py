"""The documentation holds together: the README stays a short front page, every link between
README.md, CONTRIBUTING.md and docs/ reaches a file and a heading that exist (anchors as GitHub
makes them), every page of docs/ is reachable from the README, and the program's messages name
only sections that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pulumi_mocks import ROOT

pytestmark = pytest.mark.unit

ROOT_PATH = Path(ROOT)
README_MAX_BYTES = 8000
README_MAX_SECTIONS = 10
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
# A program's pointer into the docs: docs/<page>.md, 'Section' (or "Section").
SECTION_POINTER = re.compile(r"""(docs/[\w-]+\.md), \\?["']([^"'\\]+)\\?["']""")


def pages() -> list[Path]:
    found = [ROOT_PATH / "README.md", ROOT_PATH / "CONTRIBUTING.md", *sorted((ROOT_PATH / "docs").glob("*.md"))]
    assert len(found) > 2, "docs/ has no pages"
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return [target for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))
            if not target.startswith(("http://", "https://", "mailto:"))]


def test_slugs_follow_githubs_rules():
    assert slug("Quick start, offline: no cluster, no backend") == "quick-start-offline-no-cluster-no-backend"
    assert slug("A change to every datacenter: `python -m federation up`") == \
        "a-change-to-every-datacenter-python--m-federation-up"
    assert slug("Moving the primary's gateway") == "moving-the-primarys-gateway"


def test_the_readme_is_a_front_page():
    readme = (ROOT_PATH / "README.md").read_text(encoding="utf-8")
    sections = [line for line in FENCE.sub("", readme).splitlines() if line.startswith("## ")]
    assert sections, "the README has no sections"
    assert len(readme.encode()) <= README_MAX_BYTES, f"README.md is {len(readme.encode())} bytes; move detail to docs/"
    assert len(sections) <= README_MAX_SECTIONS, sections


def test_every_relative_link_reaches_a_file_and_a_heading():
    checked = []
    for page in pages():
        for target in links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.relative_to(ROOT_PATH)}: link to {target}: no such file"
            if anchor:
                assert dest.suffix == ".md", f"{page.relative_to(ROOT_PATH)}: anchor into a non-page {target}"
                assert anchor in anchors(dest), (f"{page.relative_to(ROOT_PATH)}: link to {target}: "
                                                 f"{dest.name} has no heading with that anchor")
            checked.append(target)
    assert len(checked) > 20, checked


def test_every_page_of_docs_is_linked_from_the_readme():
    readme = ROOT_PATH / "README.md"
    linked = {(readme.parent / target.partition("#")[0]).resolve() for target in links(readme)}
    for page in pages()[1:]:
        assert page.resolve() in linked, f"{page.relative_to(ROOT_PATH)} is not linked from README.md"


def test_the_programs_messages_name_sections_that_exist():
    pointers = [(source, page, title)
                for source in sorted([*ROOT_PATH.glob("components/*.py"), *ROOT_PATH.glob("federation/*.py")])
                for page, title in SECTION_POINTER.findall(source.read_text(encoding="utf-8"))]
    assert pointers, "no message points into docs/ any more; drop this test or the pattern"
    for source, page, title in pointers:
        assert (ROOT_PATH / page).exists(), f"{source.name}: {page} does not exist"
        assert slug(title) in anchors(ROOT_PATH / page), f"{source.name}: {page} has no section {title!r}"
