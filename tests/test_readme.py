"""What the README shows a user that code can check."""
from __future__ import annotations

import re

from adelabel.config import reference
from conftest import ROOT


def test_the_config_reference_is_the_schema():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- config reference: generated from adelabel/config.py -->\n")
    end = readme.index("<!-- end of config reference -->")
    shown = readme[start:end].split("\n", 1)[1].strip()
    assert shown == reference().strip(), "regenerate the README's config reference from adelabel/config.py"


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_within_the_readme_reaches_a_heading():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    prose = re.sub(r"^```.*?^```", "", readme, flags=re.S | re.M)  # a shell comment is no heading
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", prose, flags=re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", prose))
    assert links, "the README links none of its sections"
    assert sorted(links - anchors) == []
