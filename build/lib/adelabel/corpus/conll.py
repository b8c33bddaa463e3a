"""CoNLL-style BIO files: one ``token<TAB>tag`` per line, a blank line between sentences.

Reading turns tokens back into a sentence text (tokens joined by single spaces) with character spans,
so CoNLL data flows through the same path as the ADE corpus.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from adelabel.corpus import Sentence
from adelabel.corpus.files import read_lines
from adelabel.errors import InputError
from adelabel.tags import tags_to_spans


def write_conll(path: str | Path, sentences: Iterable[tuple[Sequence[str], Sequence[str]]]) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for tokens, tags in sentences:
            for token, tag in zip(tokens, tags):
                fh.write(f"{token}\t{tag}\n")
            fh.write("\n")


def read_conll(path: str | Path) -> list[Sentence]:
    """Sentences of a CoNLL BIO file (token in the first column, tag in the last).

    Lines starting with ``#`` and ``-DOCSTART-`` lines are skipped; a tag that is not O, B-X or I-X is
    an error naming the line.
    """
    path = Path(path)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            offsets, pos = [], 0
            for t in tokens:
                offsets.append((pos, pos + len(t)))
                pos += len(t) + 1
            text = " ".join(tokens)
            sentences.append(Sentence(text=text, spans=tags_to_spans(offsets, tags),
                                      doc_id=f"{path.name}#{len(sentences) + 1}"))
            tokens.clear()
            tags.clear()

    for number, line in read_lines(path):
        if not line.strip():
            flush()
            continue
        if line.startswith("#") or line.startswith("-DOCSTART-"):
            continue
        cols = line.split()
        if len(cols) < 2:
            raise InputError(path, f"expected 'token tag', found {line!r}", number)
        tag = cols[-1]
        if not (tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)):
            raise InputError(path, f"tag {tag!r} is not O, B-TYPE or I-TYPE", number)
        tokens.append(cols[0])
        tags.append(tag)
    flush()
    return sentences
