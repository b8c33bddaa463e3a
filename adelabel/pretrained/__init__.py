"""The ready tagger shipped inside the package (``ade-bilstm/``): the default ``bilstm`` recipe trained
on the shared ADE corpus (see the README's model card), its weights stored in half precision so the
folder stays under 15 MB; they are widened to fp32 on loading.

``adelabel tag`` and ``Tagger.load()`` use ``models/bilstm`` when the working folder has one (a model
the user trained), else this one, so both work right after ``pip install``.
"""
from __future__ import annotations

import os
from pathlib import Path

READY = Path(__file__).resolve().parent / "ade-bilstm"
USER_DEFAULT = Path("models/bilstm")


def default_model() -> Path:
    """``models/bilstm`` if there is anything by that name, else the ready tagger. Anything: a damaged
    model there (a file missing, a broken link) is then refused by name, where quietly tagging with
    another model would hand the user results they did not ask for."""
    from adelabel.atomic import restore_aside

    restore_aside(USER_DEFAULT)  # a retraining killed between its two renames left it aside, not gone
    return USER_DEFAULT if os.path.lexists(USER_DEFAULT) else READY
