"""What the README shows a user that code can check."""
from __future__ import annotations

from adelabel.config import reference
from conftest import ROOT


def test_the_config_reference_is_the_schema():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- config reference: generated from adelabel/config.py -->\n")
    end = readme.index("<!-- end of config reference -->")
    shown = readme[start:end].split("\n", 1)[1].strip()
    assert shown == reference().strip(), "regenerate the README's config reference from adelabel/config.py"
