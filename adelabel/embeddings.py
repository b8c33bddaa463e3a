"""Word vectors: word2vec trained on the corpus with gensim, or pretrained vectors from a file.

Vectors are stored in word2vec's own binary format, which gensim reads without unpickling anything.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from adelabel.errors import InputError
from adelabel.vocab import normalize


def train_word2vec(sentences: Sequence[Sequence[str]], dim: int, seed: int, epochs: int = 10,
                   window: int = 5, min_count: int = 1, quiet: bool = True):
    """Skip-gram word2vec over normalised token lists; returns gensim ``KeyedVectors``."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    from adelabel.progress import Progress

    class Epochs(CallbackAny2Vec):
        def __init__(self, bar: Progress) -> None:
            self.bar = bar

        def on_epoch_end(self, model) -> None:
            self.bar.update()

    # One worker: gensim's multi-threaded training is not reproducible under a fixed seed.
    with Progress(epochs, "word2vec", "epoch", quiet=quiet) as bar:
        model = Word2Vec(sentences=[list(s) for s in sentences], vector_size=dim, window=window,
                         min_count=min_count, sg=1, negative=10, epochs=epochs, seed=seed, workers=1,
                         callbacks=[Epochs(bar)])
    return model.wv


def read_pretrained(path: str | Path):
    """A word2vec binary (``.bin``) or text file as gensim ``KeyedVectors``, as written."""
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "vectors file not found")
    binary = path.suffix == ".bin"
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, unicode_errors="replace")
    except Exception as err:  # gensim raises bare ValueError/EOFError/UnicodeError on bad files
        kind = "binary" if binary else "text"
        raise InputError(path, f"cannot read as word2vec {kind} format ({type(err).__name__}: {err}); "
                               "binary files must end in .bin") from None
    bad = np.flatnonzero(~np.isfinite(kv.vectors).all(axis=1))
    if len(bad):  # a model reading one would tag nothing but NaN
        raise InputError(path, f"the vector of {kv.index_to_key[bad[0]]!r} (and {len(bad) - 1:,} more) holds NaN "
                               "or infinite values")
    return kv


def select_vectors(kv, keep: Iterable[str] = (), max_words: int | None = None):
    """The entries of ``kv`` (pretrained vectors, :func:`read_pretrained`) a model needs, keyed by
    normalised words.

    Keeps the first ``max_words`` entries of the file (word2vec files are ordered by frequency) plus
    every word in ``keep``, so a multi-million-word file does not become a multi-gigabyte model.
    Where normalisation maps several entries to one key, the first (most frequent) one wins.
    """
    keep = set(keep)
    words, rows = [], []
    seen: set[str] = set()
    for i, word in enumerate(kv.index_to_key):
        key = normalize(word)
        if key in seen or not (max_words is None or i < max_words or key in keep):
            continue
        seen.add(key)
        words.append(key)
        rows.append(i)
    return make_keyed_vectors(words, kv.vectors[rows])


def make_keyed_vectors(words: Sequence[str], vectors: np.ndarray):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(list(words), np.asarray(vectors, dtype=np.float32))
    return kv


def save_vectors(kv, path: str | Path) -> None:
    kv.save_word2vec_format(str(path), binary=True)


def read_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Words and matrix of a vectors file written by :func:`save_vectors`."""
    from gensim.models import KeyedVectors

    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=True)
    except FileNotFoundError:
        raise InputError(path, "vectors file not found; run `adelabel prepare` first") from None
    except Exception as err:
        raise InputError(path, f"corrupt vectors file ({type(err).__name__}: {err})") from None
    return list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32)


def coverage(kv, tokens: Iterable[str]) -> tuple[float, float]:
    """Share of word types and of running tokens (normalised) that have a vector."""
    counts: dict[str, int] = {}
    for t in tokens:
        counts[t] = counts.get(t, 0) + 1
    if not counts:
        return 0.0, 0.0
    has = {w for w in counts if w in kv.key_to_index}
    return len(has) / len(counts), sum(counts[w] for w in has) / sum(counts.values())
