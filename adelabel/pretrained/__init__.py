"""The ready tagger shipped inside the package (``ade-bilstm/``): the default ``bilstm`` recipe trained
on the shared ADE corpus (see the README's model card), its weights stored in half precision so the
folder stays under 15 MB; they are widened to fp32 on loading.

``adelabel tag`` and ``Tagger.load()`` use ``models/bilstm`` when the working folder has one (a model
the user trained), else this one, so both work right after ``pip install``.
"""
from __future__ import annotations

from pathlib import Path

READY = Path(__file__).resolve().parent / "ade-bilstm"
USER_DEFAULT = Path("models/bilstm")


def default_model() -> Path:
    """``models/bilstm`` if there is a model folder there, else the ready tagger."""
    return USER_DEFAULT if (USER_DEFAULT / "manifest.json").is_file() else READY
