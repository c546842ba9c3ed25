"""The README stays a README and the docs stay navigable: README.md is at most 10 KB, every relative
link in README.md and docs/*.md points at a file that exists, and the README's headline table shows
what results/headline.json holds (so the two cannot drift apart)."""
import json
import re
from pathlib import Path

from lab.measures import METHOD_TITLES

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)  # code blocks hold no links
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target) and not target.startswith("#")]


def test_the_link_finder_finds_relative_links_only(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/a.md) ![b](../assets/b.png#x) [c](https://example.org) [d](#top)\n"
                    "```\n[e](not/a/link.md)\n```\n", encoding="utf-8")
    assert relative_links(page) == ["docs/a.md", "../assets/b.png#x"]


def test_the_readme_is_at_most_10_kb():
    assert len(README.read_bytes()) <= 10 * 1024, "move detail into docs/ and link it from the README"


def test_every_relative_link_of_the_readme_and_docs_resolves():
    broken = [f"{page.relative_to(REPO)}: {target}" for page in PAGES for target in relative_links(page)
              if not (page.parent / target.split("#")[0]).exists()]
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / target).resolve() for target in relative_links(README)}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_the_readme_headline_table_is_results_headline_json():
    headline = json.loads((REPO / "results" / "headline.json").read_text(encoding="utf-8"))
    rows = re.findall(r"^\| ([^|]+?) \| (\d+\.\d) \((\d+\.\d)–(\d+\.\d)\) \|$", README.read_text(encoding="utf-8"),
                      re.M)
    shown = {title: tuple(float(v) for v in values) for title, *values in rows}
    assert f"Run {headline['run']} (`results/headline.json`)" in README.read_text(encoding="utf-8")
    for method, value in headline["pass_at_1"].items():
        [cells] = [cells for title, cells in shown.items() if title.startswith(METHOD_TITLES[method])]
        low, high = headline["pass_at_1_ci"][method]
        assert cells == tuple(round(100 * v, 1) for v in (value, low, high)), method
