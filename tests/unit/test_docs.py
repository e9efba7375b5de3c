"""The pages themselves: README.md stays one screen and a map, docs/configuration.md is what the code
generates, every relative link resolves, and no page points at issue threads or closing notes.

(The commands the pages show are run by tests/system/test_readme_commands.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pi_axera_sd.cli.settings_doc import (
    MEANINGS,
    REGENERATE,
    UNSET,
    render_configuration,
    source_layout,
)
from pi_axera_sd.cli.settings_flags import env_name
from pi_axera_sd.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
CONFIGURATION = DOCS / "configuration.md"
README_MAX_LINES = 160


def page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The text without fenced blocks and code spans (what renders as words and links)."""
    text = re.sub(r"^\s*(```+|~~~+).*?^\s*\1\s*$", "", text, flags=re.S | re.M)
    return re.sub(r"(`+).+?\1", "", text, flags=re.S)


# ---- docs/configuration.md ----------------------------------------------------------------------


def test_configuration_page_is_generated_from_the_settings():
    assert CONFIGURATION.read_text(encoding="utf-8") == render_configuration(), (
        f"docs/configuration.md is stale: run {REGENERATE}"
    )


def test_every_setting_is_on_the_configuration_page():
    page = CONFIGURATION.read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`") for line in page.splitlines() if line.startswith("| `")}
    for name, field in Settings.model_fields.items():
        assert env_name(name, field) in rows, f"{name} ({env_name(name, field)}) is not in {CONFIGURATION}"


def test_every_setting_has_a_meaning_and_no_meaning_is_stale():
    _, comments = source_layout()
    fields = Settings.model_fields
    missing = [n for n, f in fields.items() if not (f.description or MEANINGS.get(n) or comments.get(n))]
    assert not missing, f"settings without a meaning: add them to MEANINGS in settings_doc.py: {missing}"
    assert not set(MEANINGS) - set(fields), (
        f"MEANINGS names settings that are gone: {set(MEANINGS) - set(fields)}"
    )
    assert not set(UNSET) - set(fields), f"UNSET names settings that are gone: {set(UNSET) - set(fields)}"


SOURCE = """
class Settings:
    model_config = {}

    # ---- first part ----------------------------------------------
    plain: int = 1
    beside: int = Field(  # on the first line
        2, ge=0
    )
    # a block above
    # on two lines
    above: bool = True
    both: str = "x"  # the one beside wins
    # ---- second part ---------------------------------------------
    last: float = 0.5  # last one

    def method(self) -> None:  # not a field
        pass
"""


def test_config_comments_and_sections_are_read_from_the_source():
    sections, comments = source_layout(SOURCE)
    assert sections == {
        "plain": "first part",
        "beside": "first part",
        "above": "first part",
        "both": "first part",
        "last": "second part",
    }
    assert comments == {
        "beside": "on the first line",
        "above": "a block above on two lines",
        "both": "the one beside wins",
        "last": "last one",
    }
    real_sections, _ = source_layout()
    assert set(real_sections) == set(Settings.model_fields)


def test_configuration_page_shows_choices_bounds_and_defaults():
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in CONFIGURATION.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }
    assert "`f16`" in rows["PI_AXERA_SD_PRECISION"] and "`bf16`" in rows["PI_AXERA_SD_PRECISION"]
    assert ">= 1 and <= 65535" in rows["PORT"] and "`5000`" in rows["PORT"]
    assert "`--save-images`, `--no-save-images`" in rows["PI_AXERA_SD_SAVE_IMAGES"]
    assert "`--models`" in rows["MODELS_DIR"]  # the flag serve really has, read from its parser


# ---- README.md ------------------------------------------------------------------------------------


def test_readme_is_one_screen_and_a_map():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, "README.md is a map: move detail to docs/"
    first_block = re.search(r"^```bash\n(.*?)^```", text, flags=re.S | re.M).group(1)
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == ["make serve", "make test"]
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in text, f"README.md does not link {page.name}"


# ---- every page -----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_page_points_at_issues_or_closing_notes(page: Path):
    text = page.read_text(encoding="utf-8")
    for pattern in (r"closing notes?", r"\bissues?\s+#?\d+", r"#\d+\b(?![\d.])"):
        found = re.search(pattern, prose(text), flags=re.I)
        assert not found, (
            f"{page_id(page)}: {found.group(0)!r}: the pages describe the project, not its tracker"
        )


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose_keep_headings(page), flags=re.M):
        base = slug(heading)
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def prose_keep_headings(page: Path) -> str:
    """The page without fenced blocks (a ``# comment`` in a shell block is no heading)."""
    text = page.read_text(encoding="utf-8")
    return re.sub(r"^\s*(```+|~~~+).*?^\s*\1\s*$", "", text, flags=re.S | re.M)


def relative_links(page: Path) -> list[str]:
    links = re.findall(
        r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose(page.read_text(encoding="utf-8"))
    )
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page: Path):
    broken = []
    for link in relative_links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link} (no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link} (no heading #{anchor} in {page_id(path)})")
    assert not broken, f"{page_id(page)}: " + "; ".join(broken)


def test_the_link_checker_sees_broken_links(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# A `b` c: d\n\n[ok](#a-b-c-d) [bad](#nope) [gone](missing.md) `[code](x.md)`\n")
    assert anchors(page) == {"a-b-c-d"}
    assert relative_links(page) == ["#a-b-c-d", "#nope", "missing.md"]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_repository_paths_named_in_code_spans_exist(page: Path):
    """`tests/support/fake_axengine.py`, `bench/soak.py`...: a moved file is a red test, not a stale page."""
    spans = re.findall(r"`((?:src|tests|bench|scripts|docs)/[\w./-]+)`", page.read_text(encoding="utf-8"))
    missing = [span for span in spans if "*" not in span and not (ROOT / span).exists()]
    assert not missing, f"{page_id(page)} names paths that do not exist: {missing}"
