"""Labelled text for sentence (or text) classifiers: one ``label<TAB>text`` line per example, or
``doc<TAB>label<TAB>text`` with a document ID that keeps a document's lines in one split.

The layout is that of most of the first LAYOUT_LINES lines: three columns when most have two tabs or
more, else two (one odd first line, a header or a line missing its document ID, does not decide it);
every line is split into as many columns, so a text may hold tabs of its own after them. Blank lines are
skipped. A line with too few columns, a carriage return inside it, an empty label, a label or ID
holding an invisible or control character, an empty text or a text without a word, or a
text an earlier line gives another label, is skipped and counted by reason, or, with ``strict``, an
error naming the file and line (the rule of the ADE corpus reader); so is the one line of a class no
other line has when it is a header (the first text, naming a column: one word, or label, text, ...),
and, where only some lines of a two-column file carry a document ID, each line whose ID was read as
its label (its text begins with a class and a tab): either would add a class to the model. A text
repeated with its label is kept once and counted (in two splits it would be scored on what was
learnt). Classes whose names differ only in case are kept apart, and the report says so.
"""
from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adelabel.corpus import Sentence
from adelabel.corpus.conll import is_tag
from adelabel.corpus.files import read_lines
from adelabel.errors import InputError
from adelabel.text import tokenize

MAX_PROBLEMS_SHOWN = 20
HEADER_WORDS = {"label", "labels", "class", "category", "target", "text", "sentence", "document", "doc", "id"}
"""Column names a header line holds (compared lower-cased)."""
LAYOUT_LINES = 1000


@dataclass
class LabelledReport:
    lines: int = 0
    blank_lines: int = 0
    texts: int = 0
    documents: int = 0
    columns: int = 2
    classes: Counter = field(default_factory=Counter)
    duplicates: int = 0
    malformed: Counter = field(default_factory=Counter)  # reason -> lines skipped for it
    problems: list[str] = field(default_factory=list)

    def skip(self, path: Path, line: int, reason: str, strict: bool, detail: str = "") -> None:
        """Count the line under ``reason``; ``detail`` belongs to this line only (shown, not counted by)."""
        if strict:
            raise InputError(path, reason + detail, line)
        self.malformed[reason] += 1
        self.problems.append(f"{path}:{line}: {reason}{detail}")

    def near_classes(self) -> list[str]:
        """A note for each group of classes whose names differ only in case ("ADE" and "ade"): kept
        apart, as given, but more likely one class written two ways."""
        groups: dict[str, list[str]] = {}
        for name in sorted(self.classes):
            groups.setdefault(name.casefold(), []).append(name)
        return [f"note: the classes {', '.join(map(repr, names))} differ only in case and are kept apart; "
                "write them one way if they are one class" for names in groups.values() if len(names) > 1]

    def summary(self) -> list[str]:
        layout = "doc<TAB>label<TAB>text" if self.columns == 3 else "label<TAB>text"
        out = [f"read: {self.lines:,} lines as {layout} ({self.blank_lines:,} blank)",
               f"texts: {self.texts:,} in {self.documents:,} documents; classes: "
               + ", ".join(f"{c} {n:,}" for c, n in sorted(self.classes.items())),
               *self.near_classes(),
               f"repeated texts skipped (same label, kept once): {self.duplicates:,}",
               f"malformed lines skipped: {sum(self.malformed.values()):,}"
               + "".join(f"; {reason}: {n:,}" for reason, n in sorted(self.malformed.items()))]
        out += [f"  {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            out.append(f"  ... and {len(self.problems) - MAX_PROBLEMS_SHOWN:,} more")
        return out


def _invisible(field: str) -> str | None:
    """The first control or format character (NUL, a zero-width space, a byte-order mark) of a label or
    ID, which would make it another name than the one it reads as."""
    return next((c for c in field if unicodedata.category(c) in ("Cc", "Cf") and c != "\t"), None)


def read_labelled(path: str | Path, strict: bool = False) -> tuple[list[Sentence], list[int], LabelledReport]:
    """The file's examples as sentences with a ``label`` (and their line numbers), and what was read.
    Without a document column every line is a document of its own."""
    path = Path(path)
    report = LabelledReport()
    sentences, numbers = [], []
    lines = read_lines(path)
    first = list(itertools.islice(lines, LAYOUT_LINES))
    filled = [line for _, line in first if line.strip()]
    # Trailing tabs (a spreadsheet's empty last column) are no column: counted, they made every line of a
    # two-column export a three-column one, and every text empty.
    columns = report.columns = 3 if 2 * sum(line.rstrip().count("\t") >= 2 for line in filled) > len(filled) else 2
    seen: dict[str, tuple[str, int]] = {}  # text, white space normalised -> its label and line
    tagged = 0  # lines whose last column is a tag (O, B-DRUG): a CoNLL file's
    for number, line in itertools.chain(first, lines):
        report.lines += 1
        if not line.strip():
            report.blank_lines += 1
            continue
        parts = line.lstrip(" \ufeff").split("\t", columns - 1)  # a byte-order mark where two files were joined
        tagged += "\t" in line and is_tag(line.rsplit("\t", 1)[1].strip())
        if len(parts) < columns:
            report.skip(path, number, f"missing tab (expected {columns} tab-separated columns)", strict)
            continue
        doc, label, text = parts if columns == 3 else (f"line {number}", *parts)
        label = label.strip()
        if "\r" in line:  # lines ending in CR alone read as one: the labels of all but the first are lost
            report.skip(path, number, "a carriage return inside the line (a file whose lines end in CR alone? "
                                      "convert them to LF)", strict)
        elif hidden := _invisible(label) or (_invisible(doc) if columns == 3 else None):
            # "AD\x00E" beside "ADE" would be a class of its own, and a classifier would learn three.
            report.skip(path, number, "a label or document ID holding an invisible or control character",
                        strict, f": U+{ord(hidden):04X}")
        elif not label:
            report.skip(path, number, "empty label", strict)
        elif not text.strip():
            report.skip(path, number, "empty text", strict)
        elif columns == 3 and not doc.strip():
            report.skip(path, number, "empty document ID", strict)
        elif not tokenize(text):
            report.skip(path, number, "text without a word (only invisible or control characters)", strict)
        elif (key := " ".join(text.split())) in seen:  # white space apart, the same words: the same text
            if seen[key][0] == label:
                report.duplicates += 1
            else:
                report.skip(path, number, "a text an earlier line gives another label (the first kept)", strict,
                            f": line {seen[key][1]} says {seen[key][0]!r}, this one {label!r}")
        else:
            seen[key] = (label, number)
            sentences.append(Sentence(text=text, doc_id=doc.strip(), label=label))
            numbers.append(number)
            report.classes[label] += 1
    # Where only some lines of a two-column file carry a document ID, the ID is read as the label and
    # the real label starts the text: a line whose text begins with a class and a tab is such a line,
    # however many lines its document has (its label would add a class, its text would carry the answer).
    def shifted(sentence: Sentence) -> bool:
        return columns == 2 and "\t" in sentence.text and sentence.text.split("\t", 1)[0].strip() in report.classes

    # A class of one text, among several, is a header when the first text read names a column (label,
    # text, ...); any other is a rare class, kept.
    def header(sentence: Sentence, number: int) -> bool:
        return report.classes[sentence.label] == 1 and number == numbers[0] and (
            sentence.label.lower() in HEADER_WORDS
            or set(sentence.text.lower().replace("_", " ").split()) <= HEADER_WORDS  # "text", "sentence text"
            or len(sentence.text.split()) == 1)  # a column's name is one word

    drop = ["a document ID read as a label (the text begins with a class and a tab)" if shifted(s) else
            "a class with one text (a header line?)" if len(report.classes) > 2 and header(s, n) else None
            for s, n in zip(sentences, numbers)]
    for sentence, number, reason in zip(sentences, numbers, drop):
        if reason:
            report.skip(path, number, reason, strict, f": {sentence.label!r}")
            report.classes[sentence.label] -= 1
    report.classes += Counter()  # drop the classes left without a text
    # A CoNLL file named .txt or .tsv reads as token<TAB>tag lines: its words classes, its tags texts.
    # Trained on, that is nonsense with an exit status of 0.
    if tagged and 2 * tagged >= report.lines - report.blank_lines:
        raise InputError(path, "reads as CoNLL (token<TAB>tag lines: most texts are a tag such as O or B-DRUG), "
                               "not label<TAB>text: give --format conll")
    numbers = [n for n, reason in zip(numbers, drop) if not reason]
    sentences = [s for s, reason in zip(sentences, drop) if not reason]
    report.texts = len(sentences)
    report.documents = len({s.doc_id for s in sentences})
    return sentences, numbers, report
