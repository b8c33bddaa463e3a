"""Word vectors: word2vec trained on the corpus with gensim, or pretrained vectors from a file.

Vectors are stored in word2vec's own binary format, which gensim reads without unpickling anything.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adelabel.errors import InputError
from adelabel.vocab import normalize

W2V_DIM, W2V_EPOCHS = 200, 20  # word2vec trained on a corpus's training split, unless told otherwise


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


@dataclass
class Pretrained:
    """Vectors read from a file, with what reading them changed: entries whose word came twice (the
    first kept) and words that were not UTF-8 (read with replacement characters)."""

    kv: object
    duplicates: int = 0
    not_utf8: int = 0


def _open(path: Path):
    """The file's bytes as gensim reads them: through smart_open, which unpacks .gz and .bz2."""
    from gensim import utils

    return utils.open(str(path), "rb")


def _fields(raw: bytes) -> list[bytes]:
    """A text line's fields as gensim splits them: at single spaces, after trailing white space goes
    (a tab or form feed inside a word stays in it)."""
    line = raw.rstrip()
    return line.split(b" ") if line else []


def _text_header(path: Path) -> tuple[int, int] | None:
    """A word2vec text file's ``count dim`` header, or None for a file without one (GloVe's layout)."""
    with _open(path) as fh:
        first = fh.readline()
    if first.startswith(b"\xef\xbb\xbf"):
        raise InputError(path, "begins with a byte-order mark, which word2vec's format has no room for; "
                               "save it without one", 1)
    fields = _fields(first)
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[0]), int(fields[1])
    if not fields:
        raise InputError(path, "blank (expected 'count dim', or a word and its numbers)", 1)
    return None


def _read_text(path: Path, header: tuple[int, int] | None,
               quiet: bool = True) -> tuple[list[str], dict[str, int], np.ndarray, int]:
    """A text vectors file's words, each word's row, their vectors and how many words it gave twice (the first is
    kept), in one pass; the first line that is not a word and ``dim`` numbers is an error naming it.

    Our own reader rather than gensim's: gensim reads a line one number short without a word (numpy
    repeats the last) and names no line in its errors, so a file had to be scanned before gensim read
    it, and gensim parses each number in Python; this parses a line's numbers at once, about six times
    as fast, and fills one preallocated matrix when a header gives the count. Blank lines may end a
    file with a header, not interrupt it; a file without one has every line a vector."""
    dim = header[1] if header else None
    words: list[str] = []
    index: dict[str, int] = {}
    rows: list[np.ndarray] = []
    if header and header[1] == 0:
        raise InputError(path, "its header gives vectors of dimension 0", 1)
    try:
        matrix = np.empty(header, dtype=np.float32) if header else None
    except (MemoryError, ValueError):
        raise InputError(path, f"its header says {header[0]:,} vectors of {header[1]:,} numbers: more than this "
                               "machine's memory holds; correct the count", 1) from None
    duplicates = lines = 0
    blank = None
    # A multi-gigabyte file takes minutes: its bytes read, in steps, against its size (a compressed
    # one's lines against its header's count, where it has one).
    from smart_open.compression import get_supported_extensions

    from adelabel.progress import Progress

    packed = Path(path.name.lower()).suffix in get_supported_extensions()  # as smart_open decides to unpack
    total, unit = (header[0] if header else None, "vector") if packed else (path.stat().st_size, "B")
    with _open(path) as fh, Progress(total, f"reading {path.name}", unit, quiet=quiet, scale=not packed) as bar:
        step = 0
        for number, raw in enumerate(fh, start=1):
            step += 1 if packed else len(raw)
            if number % 4096 == 0:
                bar.update(step)
                step = 0
            if header and number == 1:
                continue
            fields = _fields(raw)
            if not fields:
                blank = blank or number
                continue
            if blank:
                raise InputError(path, "a blank line between vectors", blank)
            lines += 1
            if dim is None:
                dim = len(fields) - 1
                if dim == 0:
                    raise InputError(path, "a word without numbers (expected a word and its vector)", number)
            if len(fields) != dim + 1:
                raise InputError(path, f"expected a word and {dim} numbers, found {len(fields)} fields", number)
            if header and lines > header[0]:
                continue  # counted for the message below, not stored
            word = fields[0].decode("utf-8", "replace")
            if word in index:
                duplicates += 1
                continue
            try:
                row = np.array(fields[1:], dtype=np.float32)
            except ValueError:
                bad = next(v for v in fields[1:] if not _number(v))
                raise InputError(path, f"{bad.decode('utf-8', 'replace')!r} is not a number", number) from None
            index[word] = len(words)
            if matrix is not None:
                matrix[len(words)] = row
            else:
                rows.append(row)
            words.append(word)
        bar.update(step)
    if blank and not header:
        raise InputError(path, "a blank line, which a file without a 'count dim' header cannot end in", blank)
    if header and lines != header[0]:
        raise InputError(path, f"its header says {header[0]:,} vectors, but {lines:,} lines follow (a file joined "
                               "or cut without its header updated); correct the count", 1)
    if matrix is None:
        matrix = np.stack(rows) if rows else np.zeros((0, dim or 0), dtype=np.float32)
    elif len(words) < len(matrix):  # words given twice: the rows kept, in a matrix of their own
        matrix = matrix[:len(words)].copy()
    return words, index, matrix, duplicates


def _number(value: bytes) -> bool:
    try:
        np.array([value], dtype=np.float32)
    except ValueError:
        return False
    return True


def read_pretrained(path: str | Path, quiet: bool = True) -> Pretrained:
    """A word2vec binary (``.bin``) or text file (with its ``count dim`` header, or without one as GloVe
    writes them), checked: a line that is not a word and its numbers, a header that undercounts its
    lines, or NaN is an error naming the file (and the line, in a text file). ``quiet``: no progress
    of reading a text file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "vectors file not found")
    binary = path.name.endswith((".bin", ".bin.gz", ".bin.bz2"))
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    if binary and _text_after_header(path):
        raise InputError(path, "holds word2vec text, not binary, though its name ends in .bin: rename it (.txt, "
                               "or .txt.gz) so that it is read as text")
    if binary:
        kv, duplicates = _read_binary(path)
    else:
        words, index, matrix, duplicates = _read_text(path, _text_header(path), quiet)
        kv = make_keyed_vectors(words, matrix, index)
    if not len(kv.index_to_key):  # a header "0 200" alone: a failed export, like an empty file
        raise InputError(path, "holds no vectors (its header counts none)")
    bad = np.flatnonzero(~np.isfinite(kv.vectors).all(axis=1))
    if len(bad):  # a model reading one would tag nothing but NaN
        raise InputError(path, f"the vector of {kv.index_to_key[bad[0]]!r} (and {len(bad) - 1:,} more) holds NaN "
                               "or infinite values")
    return Pretrained(kv, duplicates, sum("\ufffd" in w for w in kv.index_to_key))


def _text_after_header(path: Path) -> bool:
    """Whether a file named as word2vec binary holds text rows after its ``count dim`` header: read as
    binary, their digits became a vocabulary of fragments with values like 1e+29, without a word said."""
    from gensim import utils

    try:
        with utils.open(str(path), "rb") as fh:
            dim = int(fh.readline().split()[1])
            row = fh.read(min(4 * dim + 1000, 1 << 20)).split(b"\n", 1)[0]
        parts = row.decode("utf-8").split()
        [float(x) for x in parts[1:]]
    except (OSError, ValueError, IndexError, EOFError):  # UnicodeDecodeError is a ValueError: binary rows
        return False
    return len(parts) == dim + 1


def _refuse_rows_past_header(path: Path, kv) -> None:
    """gensim reads the rows the header counts and stops: rows past them were dropped without a word.
    Each row is its word's bytes, a space and dim float32 values (a line feed may precede a word), so an
    uncompressed file's size tells; where a word's bytes are not known (one read with replacement
    characters, or given twice), the check is skipped."""
    words = kv.index_to_key
    if path.name.endswith((".gz", ".bz2")) or any(w is None or "\ufffd" in w for w in words):
        return
    with open(path, "rb") as fh:
        header = len(fh.readline())
    expected = header + sum(len(w.encode("utf-8")) + 1 + 4 * kv.vector_size for w in words)
    if path.stat().st_size - expected > len(words):  # more than a line feed a row
        raise InputError(path, f"holds more than the {len(words):,} rows its header counts (its first line); "
                               "correct the count")


def _read_binary(path: Path):
    """A word2vec binary file through gensim, and how many words it gave twice (the first kept)."""
    from gensim.models import KeyedVectors

    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="replace")
    except Exception as err:  # gensim raises bare ValueError/EOFError/UnicodeError on bad files
        raise InputError(path, f"cannot read as word2vec binary format ({type(err).__name__}: "
                               f"{str(err)[:200]})") from None
    _refuse_rows_past_header(path, kv)
    # gensim keeps the first of a word given twice and leaves an empty slot (None) for the other.
    keep = [i for i, w in enumerate(kv.index_to_key) if w is not None]
    duplicates = len(kv.index_to_key) - len(keep)
    if duplicates:
        kv = make_keyed_vectors([kv.index_to_key[i] for i in keep], kv.vectors[keep])
    return kv, duplicates


def select_vectors(kv, keep: Iterable[str] = (), max_words: int | None = None):
    """The entries of ``kv`` (pretrained vectors, :func:`read_pretrained`) a model needs, keyed by
    normalised words, and how many entries normalisation merged into another.

    Keeps the first ``max_words`` entries of the file (word2vec files are ordered by frequency) plus
    every word in ``keep``, so a multi-million-word file does not become a multi-gigabyte model.
    Where normalisation maps several entries to one key, the first (most frequent) one wins.
    """
    keep = set(keep)
    words, rows = [], []
    seen: set[str] = set()
    merged = 0
    for i, word in enumerate(kv.index_to_key):
        key = normalize(word)
        if key in seen:
            merged += 1
            continue
        if not (max_words is None or i < max_words or key in keep):
            continue
        seen.add(key)
        words.append(key)
        rows.append(i)
    return make_keyed_vectors(words, kv.vectors[rows]), merged


def make_keyed_vectors(words: Sequence[str], vectors: np.ndarray, index: dict[str, int] | None = None):
    """gensim ``KeyedVectors`` of ``words`` (each once) and their rows. With ``index`` (each word's
    row, as a reader built it) ``words``, ``index`` and ``vectors`` (float32) are taken as they are,
    where a copy of a large file's matrix would double it."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    if index is None:
        kv.add_vectors(list(words), np.asarray(vectors, dtype=np.float32))
    else:
        kv.index_to_key, kv.key_to_index, kv.vectors = list(words), index, vectors
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
    vectors = np.asarray(kv.vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise InputError(path, "holds NaN or infinite values (damaged); run `adelabel prepare` again")
    return list(kv.index_to_key), vectors


def coverage(kv, tokens: Iterable[str]) -> tuple[float, float]:
    """Share of word types and of running tokens (normalised) that have a vector."""
    counts: dict[str, int] = {}
    for t in tokens:
        counts[t] = counts.get(t, 0) + 1
    if not counts:
        return 0.0, 0.0
    has = {w for w in counts if w in kv.key_to_index}
    return len(has) / len(counts), sum(counts[w] for w in has) / sum(counts.values())
