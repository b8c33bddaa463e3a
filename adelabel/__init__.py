"""adelabel: find drugs and adverse drug events in biomedical text.

    from adelabel import Tagger
    tagger = Tagger.load("models/bilstm")
    tagger("Intravenous azithromycin-induced ototoxicity.")

    from adelabel import Classifier
    classifier = Classifier.load("models/bigru-classify")
    classifier("Intravenous azithromycin-induced ototoxicity.").scores
"""
from typing import TYPE_CHECKING

from adelabel.versions import __version__

__all__ = ["Tagger", "Classifier", "Entity", "Relation", "SentenceScore", "Analysis", "Classification", "__version__"]
_LAZY = frozenset(__all__) - {"__version__"}

if TYPE_CHECKING:  # what a type checker and an editor see; at run time they come on first use, below
    from adelabel.tagger import Analysis, Classification, Classifier, Entity, Relation, SentenceScore, Tagger


def __getattr__(name: str):
    # Imported on first use so `import adelabel` (and the CLI's --help) stays fast without torch.
    if name in _LAZY:
        from adelabel import tagger

        return getattr(tagger, name)
    raise AttributeError(f"module 'adelabel' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
