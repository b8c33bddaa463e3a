"""Word and tag vocabularies, and the normalisation that maps a token to its vocabulary entry."""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field

import regex

PAD = "<pad>"
UNK = "<unk>"
_DIGIT = re.compile(r"\d")
_INVISIBLE = regex.compile(r"[\p{Cf}\p{DI}]")  # what the tokeniser keeps off words' ends (adelabel/text.py)


def visible(word: str) -> str:
    """``word`` without invisible format characters (a soft hyphen or zero-width space that the
    tokeniser kept inside it, adelabel/text.py), as the models read it."""
    return _INVISIBLE.sub("", word)


_LOOK_ALIKES = str.maketrans({**dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
                              **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
                              **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
                              **dict.fromkeys("\u3002\uff61", "."), "\u00b5": "mu", "\u03bc": "mu", "\u03b1": "alpha",
                              "\u03b2": "beta", "\u03b3": "gamma", "\u03b4": "delta", "\u03ba": "kappa"})


@functools.lru_cache(maxsize=4096)
def look_alike(char: str) -> str:
    """The ASCII that a typographic or compatibility character stands for (a Unicode hyphen or dash,
    a curly quote, a prime, a full-width comma, an ellipsis, a superscript digit, a letter with an
    accent, the micro sign or mu, a Greek letter of drug names: "-", "'", ",", "...", "1", "e",
    "mu" (the corpus writes "mug" for micrograms, and "mu-opioid"), "beta"), or ``char`` itself when it has none."""
    mapped = char.translate(_LOOK_ALIKES)
    if mapped != char:
        return mapped
    plain = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return plain if plain and plain.isascii() else char


def look_alikes(word: str, known: Container[str] = ()) -> str:
    """``word`` with each character not in ``known`` read as its :func:`look_alike`."""
    return "".join(c if c in known else look_alike(c) for c in word)


def normalize(word: str) -> str:
    """Lower-case, map every digit to 0 and drop invisible characters (:func:`visible`).

    Case carries little meaning for lookup in a corpus this small (sentence-initial capitals,
    "METHODS:" headers) and digits vary freely in doses and ages; both would otherwise split one
    word's evidence over many rare entries. Word vectors are keyed by the same normalisation.
    """
    return _DIGIT.sub("0", visible(word).lower())


class Vocab:
    """A fixed list of strings and their ids. Words use id 0 for padding and 1 for unknown words."""

    def __init__(self, items: Sequence[str]) -> None:
        self.items = list(items)
        self.index = {w: i for i, w in enumerate(self.items)}
        if len(self.index) != len(self.items):
            raise ValueError("vocabulary entries must be unique")

    @classmethod
    def for_words(cls, words: Iterable[str]) -> "Vocab":
        seen = dict.fromkeys([PAD, UNK])
        seen.update(dict.fromkeys(words))
        return cls(list(seen))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: str) -> int:
        return self.index[item]

    def ids(self, words: Iterable[str]) -> list[int]:
        """Ids of already normalised ``words``; unknown ones map to the UNK id."""
        unk = self.index.get(UNK, 1)
        return [self.index.get(w, unk) for w in words]


MAX_WORD_CHARS = 20


def char_ids(chars: Vocab, word: str) -> list[int]:
    """Character ids of a token (case kept: capitals tell drug names from words); a long token keeps
    its first and last ten characters, where prefixes and the telling suffixes (-mycin, -olol) are.
    A character the vocabulary lacks is read as its ASCII :func:`look_alike` where it has one."""
    word = visible(word)
    if not word.isascii():
        word = look_alikes(word, chars.index)
    if len(word) > MAX_WORD_CHARS:
        half = MAX_WORD_CHARS // 2
        word = word[:half] + word[-half:]
    return chars.ids(word)


CACHED_SPELLINGS, CACHED_SPELLING_CHARS = 100_000, 64
"""How many distinct spellings :meth:`Vocabs.lookup` remembers before it starts afresh, and the longest
it remembers (a URL or an encoded blob is looked up each time), so that its memory stays bounded over
any input (about 20 MB when full of a corpus's spellings, under 100 MB of the longest); the corpus's
20,000 distinct sentences spell about 19,000 distinct tokens."""


@dataclass
class Vocabs:
    """The vocabularies a model reads its input with."""

    words: Vocab
    chars: Vocab
    _seen: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict, repr=False, compare=False)

    def lookup(self, pieces: Sequence[str]) -> tuple[list[int], list[tuple[int, ...]]]:
        """Each token's word id (normalised, see :func:`normalize`) and character ids (:func:`char_ids`)."""
        # Tagging spent more time here than in the tagger's BiLSTM before each spelling was looked up once.
        seen = self._seen
        if len(seen) > CACHED_SPELLINGS:
            seen.clear()
        words, chars = [], []
        for piece in pieces:
            known = seen.get(piece)
            if known is None:
                known = (self._word_id(piece), tuple(char_ids(self.chars, piece)))
                if len(piece) <= CACHED_SPELLING_CHARS:
                    seen[piece] = known
            words.append(known[0])
            chars.append(known[1])
        return words, chars

    def _word_id(self, piece: str) -> int:
        # A word the vocabulary lacks in its own spelling may hold it in plain ASCII: PubMed's
        # "5\u2010fluorouracil" with a Unicode hyphen, "M\u00e9ni\u00e8re". A model trained on such
        # spellings keeps reading them as they are.
        word = normalize(piece)
        if word not in self.words.index and not word.isascii():
            word = normalize(look_alikes(piece))
        return self.words.ids([word])[0]

    def __getstate__(self) -> dict:
        # A copy sent to a worker (pickled) need not carry up to CACHED_SPELLINGS spellings looked up here.
        return {**self.__dict__, "_seen": {}}

    def to_json(self) -> dict:
        return {"words": self.words.items, "chars": self.chars.items}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabs":
        return cls(Vocab(data["words"]), Vocab(data["chars"]))
