"""Labelled text for sentence (or text) classifiers: one ``label<TAB>text`` line per example, or
``doc<TAB>label<TAB>text`` with a document ID that keeps a document's lines in one split.

The layout is that of most of the first LAYOUT_LINES lines: three columns when most have two tabs or
more, else two (one odd first line, a header or a line missing its document ID, does not decide it);
every line is split into as many columns, so a text may hold tabs of its own after them. Blank lines are
skipped. A line with too few columns, an empty label or an empty text is skipped and counted by
reason, or, with ``strict``, an error naming the file and line (the rule of the ADE corpus reader).
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adelabel.corpus import Sentence
from adelabel.corpus.files import read_lines
from adelabel.errors import InputError

MAX_PROBLEMS_SHOWN = 20
LAYOUT_LINES = 1000


@dataclass
class LabelledReport:
    lines: int = 0
    blank_lines: int = 0
    texts: int = 0
    documents: int = 0
    columns: int = 2
    classes: Counter = field(default_factory=Counter)
    malformed: Counter = field(default_factory=Counter)  # reason -> lines skipped for it
    problems: list[str] = field(default_factory=list)

    def skip(self, path: Path, line: int, reason: str, strict: bool) -> None:
        if strict:
            raise InputError(path, reason, line)
        self.malformed[reason] += 1
        self.problems.append(f"{path}:{line}: {reason}")

    def summary(self) -> list[str]:
        layout = "doc<TAB>label<TAB>text" if self.columns == 3 else "label<TAB>text"
        out = [f"read: {self.lines:,} lines as {layout} ({self.blank_lines:,} blank)",
               f"texts: {self.texts:,} in {self.documents:,} documents; classes: "
               + ", ".join(f"{c} {n:,}" for c, n in sorted(self.classes.items())),
               f"malformed lines skipped: {sum(self.malformed.values()):,}"
               + "".join(f"; {reason}: {n:,}" for reason, n in sorted(self.malformed.items()))]
        out += [f"  {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            out.append(f"  ... and {len(self.problems) - MAX_PROBLEMS_SHOWN:,} more")
        return out


def read_labelled(path: str | Path, strict: bool = False) -> tuple[list[Sentence], list[int], LabelledReport]:
    """The file's examples as sentences with a ``label`` (and their line numbers), and what was read.
    Without a document column every line is a document of its own."""
    path = Path(path)
    report = LabelledReport()
    sentences, numbers = [], []
    lines = read_lines(path)
    first = list(itertools.islice(lines, LAYOUT_LINES))
    filled = [line for _, line in first if line.strip()]
    columns = report.columns = 3 if 2 * sum(line.count("\t") >= 2 for line in filled) > len(filled) else 2
    for number, line in itertools.chain(first, lines):
        report.lines += 1
        if not line.strip():
            report.blank_lines += 1
            continue
        parts = line.split("\t", columns - 1)
        if len(parts) < columns:
            report.skip(path, number, f"missing tab (expected {columns} tab-separated columns)", strict)
            continue
        doc, label, text = parts if columns == 3 else (f"line {number}", *parts)
        label = label.strip()
        if not label:
            report.skip(path, number, "empty label", strict)
        elif not text.strip():
            report.skip(path, number, "empty text", strict)
        elif columns == 3 and not doc.strip():
            report.skip(path, number, "empty document ID", strict)
        else:
            sentences.append(Sentence(text=text, doc_id=doc.strip(), label=label))
            numbers.append(number)
            report.classes[label] += 1
    report.texts = len(sentences)
    report.documents = len({s.doc_id for s in sentences})
    return sentences, numbers, report
