"""The documentation stays true to the repository: a short README that names every route and
function, links that resolve, every template parameter documented with its default, every public
make target in `make help`, and no references to internal issue numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from textclf import config
from textclf.local.template import functions, load_template, routes

ROOT = config.REPO_ROOT
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 150

FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
ISSUE_REFERENCE = re.compile(r"\bissues?[\s_-]*#?\d+", re.IGNORECASE)
#: Make targets that are steps of others, not entry points (`test` runs `pytest`).
INTERNAL_TARGETS = {"pytest"}


def prose(text: str) -> str:
    """The page without its fenced code blocks (diagrams and shell lines are not links)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_readme_links_every_page_of_docs() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [p.name for p in DOCS if f"](docs/{p.name}" not in text]
    assert not missing, f"README.md does not link {missing}"


def test_readme_diagram_names_every_route_and_function() -> None:
    text = README.read_text(encoding="utf-8")
    template = load_template(ROOT / "template.yaml")
    for route in routes(template):
        path = route.path.replace("{job_name}", "{job}")
        assert re.search(rf"{route.method}\s+{re.escape(path)}\s", text), f"{route.method} {route.path}"
    for function in functions(template):
        assert function.name in text, function.name


def parameter_table() -> dict[str, str]:
    """docs/api.md's deploy table: parameter name -> default as written (`x` or "empty")."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text[text.index("## Deploy") :]
    rows = re.findall(r"^\| `(\w+)` \| (`[^`]*`|empty) \|", section, re.MULTILINE)
    return {name: default.strip("`") for name, default in rows}


def test_api_md_lists_every_template_parameter_with_its_default() -> None:
    documented = parameter_table()
    parameters = load_template(ROOT / "template.yaml")["Parameters"]
    missing = sorted(set(parameters) - set(documented))
    stale = sorted(set(documented) - set(parameters))
    assert not missing, f"docs/api.md's parameter table lacks {missing}"
    assert not stale, f"docs/api.md documents parameters the template no longer has: {stale}"
    for name, spec in parameters.items():
        default = spec.get("Default", "")
        expected = "empty" if default in ("", None) else str(default)
        assert documented[name] == expected, f"{name}: docs say {documented[name]!r}, template {expected!r}"


#: Where the project's own text lives (virtualenvs, caches and artifacts are not ours to police).
SOURCE_FOLDERS = ("src", "functions", "model", "tests", "docs", "events", ".ci")
TOP_LEVEL_FILES = ("README.md", "Makefile", "template.yaml", "samconfig.toml", "pyproject.toml")
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".sh", ".html", ".txt", ".json"}


def project_text_files() -> list[Path]:
    found = [ROOT / name for name in TOP_LEVEL_FILES]
    for folder in SOURCE_FOLDERS:
        found += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file()
            and (p.suffix in TEXT_SUFFIXES or p.parent.name == ".ci")
            and "__pycache__" not in p.parts
        ]
    return found


def test_no_references_to_internal_issue_numbers() -> None:
    offenders = []
    for path in project_text_files():
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if ISSUE_REFERENCE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not offenders, "say what the work is, not its issue number:\n" + "\n".join(offenders)


def test_make_help_lists_every_public_target() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE).group(1).split())  # type: ignore[union-attr]
    listed = set(re.findall(r'@echo "make ([\w-]+)', makefile))
    missing = sorted(phony - INTERNAL_TARGETS - listed)
    assert not missing, f"make help does not list {missing}"
