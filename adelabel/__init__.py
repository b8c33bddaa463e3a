"""adelabel: find drugs and adverse drug events in biomedical text.

    from adelabel import Tagger
    tagger = Tagger.load("models/bilstm")
    tagger("Intravenous azithromycin-induced ototoxicity.")

    from adelabel import Classifier
    classifier = Classifier.load("models/bigru-classify")
    classifier("Intravenous azithromycin-induced ototoxicity.").scores
"""
from adelabel.versions import __version__

__all__ = ["Tagger", "Classifier", "Entity", "Relation", "SentenceScore", "Analysis", "Classification", "__version__"]


def __getattr__(name: str):
    # Imported on first use so `import adelabel` (and the CLI's --help) stays fast without torch.
    if name in ("Tagger", "Classifier", "Entity", "Relation", "SentenceScore", "Analysis", "Classification"):
        from adelabel import tagger

        return getattr(tagger, name)
    raise AttributeError(name)
