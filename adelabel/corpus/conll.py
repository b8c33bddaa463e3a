"""CoNLL-style BIO files: one ``token<TAB>tag`` per line (the token first, the tag last; columns between
are ignored), a blank line between sentences, ``-DOCSTART-`` lines between documents. BIOES and BILOU
tags are read as the IOB2 tags of the same entities.

Reading turns tokens back into a sentence text (tokens joined by single spaces) with character spans,
so CoNLL data flows through the same path as the ADE corpus. Entity types are whatever the tags name.
The ``# relation =`` comments of ``tag --format conll`` are read back as the relations they name.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adelabel.corpus import EntityReport, Sentence, relates
from adelabel.corpus.files import read_lines
from adelabel.errors import InputError
from adelabel.tags import tags_to_spans


def docstart(doc_id: str) -> str:
    """The line that opens a document: ``-DOCSTART-<TAB>id<TAB>O``. Tools that know the convention skip
    it; to one that does not it is a token tagged O; :func:`read_conll_corpus` takes the id back, so
    data read again keeps its documents whole in one split."""
    return f"-DOCSTART-\t{doc_id}\tO\n\n"


def write_conll(path: str | Path, sentences: Iterable[tuple[str, Sequence[str], Sequence[str]]]) -> None:
    """``(document id, tokens, tags)`` per sentence; a document's sentences are opened by its
    :func:`docstart` line."""
    with Path(path).open("w", encoding="utf-8") as fh:
        doc = None
        for doc_id, tokens, tags in sentences:
            if doc_id != doc:
                fh.write(docstart(doc_id))
                doc = doc_id
            for token, tag in zip(tokens, tags):
                fh.write(f"{token}\t{tag}\n")
            fh.write("\n")


@dataclass
class ConllReport(EntityReport):
    """What reading a CoNLL file found and repaired."""

    lines: int = 0
    repaired: int = 0  # I-X tags that continued no X entity, read as B-X
    converted: int = 0  # BIOES/BILOU tags (S-, E-, U-, L-) read as IOB2
    comments: int = 0  # lines starting "# " that are no token: skipped
    relations: int = 0  # of them, the "# relation =" lines tag --format conll writes, read as relations
    left_out: Counter = field(default_factory=Counter)  # reason -> relation lines left out

    def summary(self) -> list[str]:
        return [f"read: {self.path} {self.lines:,} lines, {self.documents:,} documents", *self.counts(),
                f"I- tags that continued no entity of their type, read as B- (an entity start): {self.repaired:,}",
                *([f"BIOES/BILOU tags read as IOB2 (S-/U- as B-, E-/L- as I-): {self.converted:,}"]
                  if self.converted else []),
                *([f"comment lines (starting '# ') skipped: {self.comments:,}"] if self.comments else []),
                *([f"relations ('# relation =' lines): {self.relations:,}"] if self.relations else []),
                *(f"left out: {n:,} relation lines {reason}" for reason, n in sorted(self.left_out.items()))]


# What `tag --format conll` writes of a relation: its type, the drug's and the effect's indices among the
# entities of the "# text =" line, their texts as JSON strings, and its score.
_RELATION = re.compile(r'# relation = (\S+) (\d+) ("(?:[^"\\]|\\.)*") -> (\d+) ("(?:[^"\\]|\\.)*")(?: \S+)?')


def _relate(sentences: Sequence[Sentence], pending: list[tuple[int, str, int, str]], report: ConllReport) -> None:
    """The relations of one ``# text =`` line, whose sentences are ``sentences``: each names its drug and
    effect by their place among the line's entities, which are the sentences' spans in order."""
    entities = [(sentence, k) for sentence in sentences for k in range(len(sentence.spans))]
    words = lambda text: "".join(text.split())  # noqa: E731  (tokens come back joined by single spaces)
    for drug, drug_text, effect, effect_text in pending:
        if max(drug, effect) >= len(entities):
            report.left_out["naming an entity the tags do not hold"] += 1
            continue
        (sentence, d), (other, e) = entities[drug], entities[effect]
        spans = sentence.spans
        if sentence is not other:
            report.left_out["across sentences"] += 1
        elif (words(sentence.text[spans[d][0]:spans[d][1]]) != words(drug_text)
              or words(sentence.text[spans[e][0]:spans[e][1]]) != words(effect_text)):
            report.left_out["whose entity texts are not the tagged ones"] += 1
        elif not relates(spans[d][2], spans[e][2]):
            report.left_out["not from a DRUG to another type"] += 1
        elif (d, e) not in sentence.relations:
            sentence.relations.append((d, e))
            report.relations += 1
    pending.clear()


def _columns(line: str) -> list[str]:
    """A line's columns: split at tabs when it has one (a token may then hold spaces: "5 mg"), else at
    runs of spaces. Other white space (a no-break space, a stray carriage return) stays in its column,
    where a token keeps it and a tag is refused, rather than silently splitting a token in two."""
    if "\t" in line:
        cols = [c.strip(" ") for c in line.split("\t")]
        while cols and not cols[-1]:  # a tab at the line's end (or start) opens no column
            cols.pop()
        while cols and not cols[0]:
            cols.pop(0)
        return cols
    return [c for c in line.split(" ") if c]


# BIOES (flair's) and BILOU (spaCy's) files name an entity's single token S-/U- and its last E-/L-; read
# as IOB2 they are a start and a continuation, the same entities.
AS_IOB2 = {"B-": "B-", "I-": "I-", "S-": "B-", "U-": "B-", "E-": "I-", "L-": "I-"}


def is_tag(tag: str) -> bool:
    """Whether a CoNLL file's last column is a tag: O, or B-/I- (BIOES's and BILOU's prefixes too) and a type."""
    return tag == "O" or (tag[:2] in AS_IOB2 and len(tag) > 2)


def _token_of_hash(cols: list[str], width: int) -> bool:
    """Whether a line starting with "# " is the token "#" with its tag (a space-separated file's
    "# O", or "# SYM O" among lines of three columns), not a comment ("# text = ...", a note that ends
    in a word shaped like a tag): it has as many columns as the token lines (``width``: the last one's,
    2 before any) and its last is a tag."""
    return cols[0] == "#" and len(cols) == width and is_tag(cols[-1]) and "=" not in cols[1:3]


def read_conll_corpus(path: str | Path, strict: bool = False) -> tuple[list[Sentence], ConllReport]:
    """Sentences of a CoNLL BIO file with their documents, and the report. ``-DOCSTART-`` lines separate
    documents (one that names an id between it and its tag, as :func:`docstart` writes, gives the
    document that id, when the file's lines name more than one; a value all repeat is a filler); in a
    file without any, a ``# text =`` comment opens one (``tag --format conll`` writes one per input
    line, which may hold a whole abstract); without either, each sentence is its own document.

    An ``I-X`` that continues no ``X`` entity (after ``O``, or after another type) is read as ``B-X``
    and counted, as most tools write such files; under ``strict`` it is an error naming the line. A
    tag that is not O, B-X or I-X, or a line without a tag, is an error naming the line.
    """
    path = Path(path)
    report = ConllReport(path=str(path))
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    numbered = texts = 0
    width = 2  # columns of the last token line
    named: list[str] = []  # what each -DOCSTART- line puts between it and its tag ("" for nothing)
    text_block: list[int] = []  # per sentence, the number of the last "# text =" comment before it
    opened_by: list[int] = []  # per sentence, the number of the last -DOCSTART- line before it
    pending: list[tuple[int, str, int, str]] = []  # the "# relation =" lines of the current "# text =" line
    record = 0  # where the current "# text =" line's sentences begin

    def flush() -> None:
        if tokens:
            offsets, pos = [], 0
            for t in tokens:
                offsets.append((pos, pos + len(t)))
                pos += len(t) + 1
            spans = tags_to_spans(offsets, tags)
            sentences.append(Sentence(text=" ".join(tokens), spans=spans, negative=not spans))
            text_block.append(texts)
            opened_by.append(numbered)
            tokens.clear()
            tags.clear()

    for number, line in read_lines(path):
        report.lines = number
        if not line.strip():
            flush()
            continue
        if line.startswith("-DOCSTART-"):
            flush()
            fields = _columns(line)
            numbered += 1
            named.append(fields[1] if len(fields) == 3 and fields[1] not in ("-X-", "-DOCSTART-") else "")
            continue
        if "\r" in line:  # lines ending in CR alone read as one, whose middle columns would be ignored
            raise InputError(path, "a carriage return inside the line (a file whose lines end in CR alone? "
                                   "convert them to LF)", number)
        cols = _columns(line)
        if (line.startswith("# ") or line == "#") and not _token_of_hash(cols, width):  # "# text = ...", a note
            report.comments += 1
            if line.startswith("# text ="):
                flush()
                _relate(sentences[record:], pending, report)
                record = len(sentences)
                texts += 1
            elif line.startswith("# relation ="):
                try:
                    m = _RELATION.fullmatch(line)
                    relation = int(m.group(2)), json.loads(m.group(3)), int(m.group(4)), json.loads(m.group(5))
                except (AttributeError, ValueError):  # no match, or not JSON strings
                    report.left_out["not in the form tag --format conll writes"] += 1
                else:
                    if texts:
                        pending.append(relation)
                    else:
                        report.left_out["outside a '# text =' line's sentences"] += 1
            continue
        if len(cols) < 2 or not cols[0]:
            raise InputError(path, f"expected 'token tag', found {line!r}", number)
        bad = next((c for c in cols[0] if unicodedata.category(c) == "Cc"), None)
        if bad is not None:  # the tokens of prepare's text would then not be the file's, nor their tags
            raise InputError(path, f"token {cols[0]!r} holds the control character U+{ord(bad):04X}, at which "
                                   "the tokeniser would split it; remove it (a file damaged in export?)", number)
        tag, width = cols[-1], len(cols)
        if not is_tag(tag):
            raise InputError(path, f"tag {tag!r} is not O, B-TYPE or I-TYPE (or BIOES's S-, E-, BILOU's U-, L-)",
                             number)
        if any(c.isspace() for c in tag):  # a tab-separated tag "B-DR UG": no brat .ann line could hold it
            raise InputError(path, f"entity type {tag[2:]!r} holds white space, which the brat output (and "
                                   "most tools) cannot carry; write it with _ or -", number)
        if tag != "O" and AS_IOB2[tag[:2]] != tag[:2]:
            report.converted += 1
            tag = AS_IOB2[tag[:2]] + tag[2:]
        if tag.startswith("I-") and (not tags or tags[-1] == "O" or tags[-1][2:] != tag[2:]):
            if strict:
                raise InputError(path, f"tag {tag} continues no {tag[2:]} entity (the tag before it is "
                                       f"{tags[-1] if tags else 'none'}); IOB2 starts an entity with B-", number)
            report.repaired += 1
            tag = "B-" + tag[2:]
        tokens.append(cols[0])
        tags.append(tag)
    flush()
    _relate(sentences[record:], pending, report)
    if not sentences:
        raise InputError(path, "no sentences read (expected token<TAB>tag lines)")
    # The middle field is an id when the lines name several (or there is one line); a value every line
    # repeats is a filler (CoNLL-2002's "-DOCSTART- -DOCSTART- O"), and each such line opens a document.
    ids = numbered == 1 or len(set(named) - {""}) > 1
    for number, sentence in enumerate(sentences, start=1):
        if numbered:
            k = opened_by[number - 1]
            sentence.doc_id = named[k - 1] if ids and k and named[k - 1] else f"{path.name}#doc{k}"
        else:
            sentence.doc_id = f"{path.name}#text{text_block[number - 1]}" if texts else f"{path.name}#{number}"
    report.count(sentences)
    report.documents = len({s.doc_id for s in sentences})
    return sentences, report
