"""Static word vectors distilled from a pretrained transformer encoder (``prepare --encoder-vectors``).

Word2vec here learns from the training split alone, a third of a million tokens. A pretrained encoder
has read far more text; averaging the states it gives each word over the training split's sentences
(the mean of its layers, a word's sub-tokens averaged) turns that knowledge into one vector per word,
which the recurrent taggers read beside the word2vec vector and which costs nothing at tagging time:
it is a column block of the same embedding table. Only the training split's text is read, for the
reason word2vec reads only it (adelabel/prepare.py).

The averages are centred and reduced to :data:`DIM` principal components, then scaled to the word2vec
vectors' mean length, so neither block dominates the first layer at initialisation.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from adelabel.text import tokenize
from adelabel.vocab import normalize

DIM = 100
MINILM = "minilm"
BATCH = 32


def encoder_source(name: str) -> str:
    """The checkpoint folder ``name`` stands for: ``minilm`` is the packaged all-MiniLM-L6-v2."""
    return "" if name == MINILM else name


class Encoder:
    """A tokeniser and encoder loaded once (``minilm`` or a checkpoint folder): a missing package or a
    folder that holds no encoder is refused when it is made, before any corpus is read, and ``cv``
    reuses it for every fold."""

    def __init__(self, name: str) -> None:
        from adelabel.models.transformer import load_encoder

        self.name = name
        self.tokenizer, self.model = load_encoder(encoder_source(name), None)
        self.model.eval()


@torch.inference_mode()
def average_states(texts: Sequence[str], encoder: Encoder, quiet: bool = True) -> dict[str, np.ndarray]:
    """Each normalised word of ``texts`` with the mean, over its occurrences, of the encoder's states
    (all layers above the embeddings averaged; a word's sub-tokens averaged)."""
    from adelabel.progress import Progress

    tokenizer, model = encoder.tokenizer, encoder.model
    limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    # Sentences of like length together: padding is most of the work otherwise.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with Progress(len(texts), "encoder vectors", "sentence", quiet=quiet) as bar:
        for start in range(0, len(order), BATCH):
            chunk = [texts[i] for i in order[start:start + BATCH]]
            enc = tokenizer(chunk, return_offsets_mapping=True, padding=True, truncation=True,
                            max_length=limit, return_tensors="pt")
            offsets = enc.pop("offset_mapping").tolist()
            layers = model(**enc, output_hidden_states=True).hidden_states[1:]
            states = torch.stack(layers).mean(0).float().numpy()
            for row, text in enumerate(chunk):
                _add_words(text, offsets[row], states[row], sums, counts)
            bar.update(len(chunk))
    return {w: sums[w] / counts[w] for w in sums}


def _add_words(text: str, offsets: list[list[int]], states: np.ndarray, sums: dict, counts: dict) -> None:
    pieces = [(k, a, b) for k, (a, b) in enumerate(offsets) if b > a]  # special tokens and padding: (0, 0)
    p = 0
    for s, e in tokenize(text):
        while p < len(pieces) and pieces[p][2] <= s:
            p += 1
        rows = []
        q = p
        while q < len(pieces) and pieces[q][1] < e:
            rows.append(pieces[q][0])
            q += 1
        if not rows:  # past the encoder's length limit, or characters its tokeniser drops
            continue
        word = normalize(text[s:e])
        vector = states[rows].mean(0)
        if word in sums:
            sums[word] += vector
            counts[word] += 1
        else:
            sums[word] = vector.astype(np.float64)
            counts[word] = 1


def append_encoder_vectors(words: Sequence[str], vectors: np.ndarray, averages: dict[str, np.ndarray],
                           dim: int = DIM, scale_rows: int | None = None) -> np.ndarray:
    """``vectors`` (one row per word of ``words``) with ``dim`` more columns: the words' encoder
    averages, centred, reduced by PCA and scaled to the mean row length of ``vectors`` (of its first
    ``scale_rows`` rows: those after them may be zeros, words a vectors file lacks). A word the encoder
    never read gets zeros there (the centred mean)."""
    width = len(next(iter(averages.values()))) if averages else 0
    static = np.zeros((len(words), width), dtype=np.float64)
    seen = np.zeros(len(words), dtype=bool)
    for i, w in enumerate(words):
        if w in averages:
            static[i], seen[i] = averages[w], True
    if seen.any():
        static[seen] -= static[seen].mean(0)
    dim = min(dim, width, int(seen.sum()))
    if dim == 0:
        return np.asarray(vectors, dtype=np.float32)
    _, _, vt = np.linalg.svd(static[seen], full_matrices=False)
    reduced = static @ vt[:dim].T
    length = np.linalg.norm(reduced[seen], axis=1).mean()
    if length > 0:
        reduced *= np.linalg.norm(vectors[:scale_rows], axis=1).mean() / length
    return np.concatenate([np.asarray(vectors, dtype=np.float32), reduced.astype(np.float32)], axis=1)
