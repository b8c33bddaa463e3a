"""CoNLL-style BIO files: one ``token<TAB>tag`` per line (the token first, the tag last; columns between
are ignored), a blank line between sentences, ``-DOCSTART-`` lines between documents.

Reading turns tokens back into a sentence text (tokens joined by single spaces) with character spans,
so CoNLL data flows through the same path as the ADE corpus. Entity types are whatever the tags name.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adelabel.corpus import EntityReport, Sentence
from adelabel.corpus.files import read_lines
from adelabel.errors import InputError
from adelabel.tags import tags_to_spans


def write_conll(path: str | Path, sentences: Iterable[tuple[Sequence[str], Sequence[str]]]) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for tokens, tags in sentences:
            for token, tag in zip(tokens, tags):
                fh.write(f"{token}\t{tag}\n")
            fh.write("\n")


@dataclass
class ConllReport(EntityReport):
    """What reading a CoNLL file found and repaired."""

    lines: int = 0
    repaired: int = 0  # I-X tags that continued no X entity, read as B-X

    def summary(self) -> list[str]:
        return [f"read: {self.path} {self.lines:,} lines, {self.documents:,} documents", *self.counts(),
                f"I- tags that continued no entity of their type, read as B- (an entity start): {self.repaired:,}"]


def read_conll_corpus(path: str | Path, strict: bool = False) -> tuple[list[Sentence], ConllReport]:
    """Sentences of a CoNLL BIO file with their documents (``-DOCSTART-`` lines separate them; without
    any, each sentence is its own document), and the report.

    An ``I-X`` that continues no ``X`` entity (after ``O``, or after another type) is read as ``B-X``
    and counted, as most tools write such files; under ``strict`` it is an error naming the line. A
    tag that is not O, B-X or I-X, or a line without a tag, is an error naming the line.
    """
    path = Path(path)
    report = ConllReport(path=str(path))
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    doc = 0
    uses_docstart = False

    def flush() -> None:
        if tokens:
            offsets, pos = [], 0
            for t in tokens:
                offsets.append((pos, pos + len(t)))
                pos += len(t) + 1
            spans = tags_to_spans(offsets, tags)
            doc_id = f"{path.name}#doc{doc}" if uses_docstart else f"{path.name}#{len(sentences) + 1}"
            sentences.append(Sentence(text=" ".join(tokens), spans=spans, doc_id=doc_id, negative=not spans))
            tokens.clear()
            tags.clear()

    for number, line in read_lines(path):
        report.lines = number
        if not line.strip():
            flush()
            continue
        if line.startswith("-DOCSTART-"):
            flush()
            doc, uses_docstart = doc + 1, True
            continue
        if line.startswith("# ") or line == "#":
            continue  # a comment ("# text = ..."); "#<TAB>O" is a token
        cols = line.split()
        if len(cols) < 2:
            raise InputError(path, f"expected 'token tag', found {line!r}", number)
        tag = cols[-1]
        if not (tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)):
            raise InputError(path, f"tag {tag!r} is not O, B-TYPE or I-TYPE", number)
        if tag.startswith("I-") and (not tags or tags[-1] == "O" or tags[-1][2:] != tag[2:]):
            if strict:
                raise InputError(path, f"tag {tag} continues no {tag[2:]} entity (the tag before it is "
                                       f"{tags[-1] if tags else 'none'}); IOB2 starts an entity with B-", number)
            report.repaired += 1
            tag = "B-" + tag[2:]
        tokens.append(cols[0])
        tags.append(tag)
    flush()
    if not sentences:
        raise InputError(path, "no sentences read (expected token<TAB>tag lines)")
    report.count(sentences)
    report.documents = len({s.doc_id for s in sentences})
    return sentences, report
