"""The ADE corpus v2 as distributed: DRUG-AE.rel, DRUG-DOSE.rel and ADE-NEG.txt.

The relation files give mention offsets in the annotators' documents (``PMID\\n\\nTitle\\n\\nAbstract``),
not in the sentence. We recover the sentence's own start in its document: each mention at document
offset ``b`` that occurs at sentence position ``p`` votes for a sentence start ``b - p``; the two
mentions of one line must agree, and all lines of one sentence share the start, so the start most
votes agree on wins. That resolves a mention that occurs more than once in its sentence, where the
first ``str.find`` would often pick the wrong occurrence.

Overlap policy: identical spans from several relation lines are merged; when spans nest or cross,
the longer (outer) one is kept and the other dropped, which keeps "heparin-induced thrombocytopenia"
as an AE rather than splitting it around the drug. Everything merged or dropped is counted in
:class:`CorpusReport`, which ``adelabel prepare`` prints.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adelabel.corpus import Sentence, Span
from adelabel.corpus.files import read_lines
from adelabel.errors import InputError

AE_FILE = "DRUG-AE.rel"
DOSE_FILE = "DRUG-DOSE.rel"
NEG_FILE = "ADE-NEG.txt"
DEFAULT_LABELS = ("DRUG", "AE")
ALL_LABELS = ("DRUG", "AE", "DOSE")
MAX_PROBLEMS_SHOWN = 20


@dataclass
class CorpusReport:
    """What reading the corpus found, kept, merged and dropped."""

    lines: dict[str, int] = field(default_factory=dict)
    sentences: int = 0
    negative_sentences: int = 0
    mentions: int = 0
    located_by_offsets: int = 0
    located_nearest: int = 0
    not_first_occurrence: int = 0
    unlocatable: int = 0
    malformed_lines: int = 0
    malformed: Counter = field(default_factory=Counter)  # reason -> lines skipped for it
    blank_lines: int = 0
    duplicate_negative_lines: int = 0
    duplicate_relation_lines: int = 0
    duplicate_spans: int = 0
    nested_dropped: int = 0
    crossing_dropped: int = 0
    same_extent_other_label_dropped: int = 0
    overlapping_dropped: int = 0
    negative_also_positive: int = 0
    relations: int = 0
    relations_dropped: int = 0
    entities: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    first_malformed: "Malformed | None" = field(default=None, repr=False)
    """Under ``--strict``, the earliest malformed line found so far, in the files' order (a line whose
    offsets fall outside its sentence is found only once every line of the sentence is read)."""

    def problem(self, path: Path, line: int, message: str) -> None:
        self.problems.append(f"{path}:{line}: {message}")

    def skip(self, err: "Malformed", strict: bool) -> None:
        """A malformed line: under ``strict`` kept as the error to raise if it is the earliest (see
        :func:`read_ade`), else skipped and counted by its reason."""
        if strict:
            if self.first_malformed is None or _place(err) < _place(self.first_malformed):
                self.first_malformed = err
            return
        self.malformed_lines += 1
        self.malformed[err.kind] += 1
        self.problems.append(str(err))

    def summary(self) -> list[str]:
        files = ", ".join(f"{name} {n:,} lines" for name, n in self.lines.items())
        out = [
            f"read: {files}",
            f"sentences: {self.sentences:,} ({self.negative_sentences:,} without adverse events)",
            "entities kept: " + ", ".join(f"{lab} {n:,}" for lab, n in sorted(self.entities.items())),
            f"mentions: {self.mentions:,} located by document offsets {self.located_by_offsets:,}, "
            f"by nearest occurrence {self.located_nearest:,}, not found {self.unlocatable:,} "
            f"({self.not_first_occurrence:,} were not the first occurrence in their sentence)",
            f"malformed lines skipped: {self.malformed_lines:,}"
            + (" (" + ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.malformed.items())) + ")"
               if self.malformed else ""),
            f"blank lines skipped: {self.blank_lines:,}",
            f"duplicate ADE-NEG lines skipped: {self.duplicate_negative_lines:,}",
            f"duplicate spans merged: {self.duplicate_spans:,}; nested spans dropped (outer kept): "
            f"{self.nested_dropped:,}; crossing spans dropped (longer kept): {self.crossing_dropped:,}; "
            f"same span with another label dropped: {self.same_extent_other_label_dropped:,}"
            + (f"; overlapping spans dropped, both (--overlaps drop): {self.overlapping_dropped:,}"
               if self.overlapping_dropped else ""),
            f"ADE-NEG sentences also listed with relations (kept once, as positive): "
            f"{self.negative_also_positive:,}",
            f"relations kept: {self.relations:,} (distinct pairs per sentence; lines repeating a pair: "
            f"{self.duplicate_relation_lines:,}); lost with a span the overlap policy dropped: "
            f"{self.relations_dropped:,}",
        ]
        out += self.problems[:MAX_PROBLEMS_SHOWN]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            out.append(f"... and {len(self.problems) - MAX_PROBLEMS_SHOWN:,} more problems")
        return out


def _place(err: "Malformed") -> tuple[int, int]:
    """Where a malformed line stands in the corpus: its file in reading order, then its line."""
    order = (AE_FILE, DOSE_FILE, NEG_FILE)
    name = Path(err.path).name
    return (order.index(name) if name in order else len(order), err.line or 0)


class Malformed(InputError):
    """A corpus line that cannot be used; ``kind`` is the short reason it is counted under."""

    def __init__(self, path: Path, line: int, kind: str, message: str) -> None:
        super().__init__(path, message, line)
        self.kind = kind


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


_DIGITS = re.compile(r"[0-9]+")  # ASCII only: int() also takes "3_2", " 32 " and other scripts' digits
_OFFSET = re.compile(r"-?[0-9]+")  # a negative one is read, to be refused as what it is


def _check_line(path: Path, number: int, line: str, pmid: str) -> str:
    """What every corpus line must satisfy: a numeric PubMed ID, no control characters. Returns the ID
    without leading zeros, so that "090000001" and "90000001" are one document (in one split)."""
    bad = _CONTROL.search(line)
    if bad and bad.group() == "\r":  # lines that end in CR alone read as one: each would be lost
        raise Malformed(path, number, "carriage return inside the line",
                        f"a carriage return at column {bad.start() + 1}, inside the line (a file whose lines "
                        "end in CR alone? convert them to LF)")
    if bad:
        raise Malformed(path, number, "control character", f"control character U+{ord(bad.group()):04X} "
                                                           f"at column {bad.start() + 1}")
    if not _DIGITS.fullmatch(pmid):
        raise Malformed(path, number, "PubMed ID not a number", f"PubMed ID {pmid!r} is not a number")
    return str(int(pmid))


@dataclass
class _Mention:
    text: str
    begin: int
    label: str
    path: Path
    line: int


def _occurrences(text: str, mention: str) -> list[int]:
    return [m.start() for m in re.finditer(f"(?={re.escape(mention)})", text)]


def _parse_relation(path: Path, number: int, line: str, label: str) -> tuple[str, str, list[_Mention]]:
    fields = line.split("|")
    if len(fields) < 8:
        raise Malformed(path, number, "too few fields", f"expected 8 '|'-separated fields, found {len(fields)}")
    # A sentence may itself hold '|': the first field is the ID and the last six are fixed.
    pmid, sentence = fields[0].strip(), "|".join(fields[1:-6])
    if not sentence.strip():
        raise Malformed(path, number, "empty sentence", "empty sentence")
    pmid = _check_line(path, number, line, pmid)
    other, o_begin, o_end, drug, d_begin, d_end = fields[-6:]
    mentions = []
    for text, begin, end, lab in ((other, o_begin, o_end, label), (drug, d_begin, d_end, "DRUG")):
        if not (_OFFSET.fullmatch(begin) and _OFFSET.fullmatch(end)):
            # More than 8 fields is a '|' in the sentence, or a field too many at the end, which shifts
            # the last six: said, since the offsets named are then other fields.
            extra = (f" (the line has {len(fields)} '|'-separated fields, not 8: a field too many?)"
                     if len(fields) > 8 else "")
            raise Malformed(path, number, "offsets not integers",
                            f"offsets of {text!r} are not integers: {begin!r}, {end!r}{extra}")
        b, e = int(begin), int(end)
        if not text.strip():
            raise Malformed(path, number, "empty mention", "empty mention")
        if b < 0 or e < 0:
            raise Malformed(path, number, "negative offsets", f"offsets {b}-{e} of {text!r} are negative")
        if e <= b:
            raise Malformed(path, number, "inverted offsets", f"offsets {b}-{e} of {text!r} end before they begin")
        if e - b != len(text):
            raise Malformed(path, number, "offsets not the mention's length",
                            f"offsets {b}-{e} of {text!r} do not match its length {len(text)}")
        if text.strip() not in sentence:
            raise Malformed(path, number, "mention not in sentence",
                            f"mention {text.strip()!r} does not occur in the sentence")
        # A few mentions carry a stray space (" minocycline"); the entity is the word, not the space.
        lead = len(text) - len(text.lstrip())
        mentions.append(_Mention(text.strip(), b + lead, lab, path, number))
    return pmid, sentence, mentions


def _locate(sentence: str, mentions: Sequence[_Mention], labels: Sequence[str],
            report: CorpusReport, strict: bool) -> list[tuple[_Mention, Span]]:
    """Sentence-level spans of ``mentions`` (all from lines of this one sentence), each with its mention.

    A line whose offsets put a mention outside the sentence that the other lines place is malformed:
    its mentions are dropped (an error under ``strict``)."""
    votes: Counter = Counter()
    by_line: dict[tuple[Path, int], list[_Mention]] = defaultdict(list)
    for m in mentions:  # keyed by file too: DRUG-AE.rel and DRUG-DOSE.rel lines share numbers
        by_line[(m.path, m.line)].append(m)
    for line_mentions in by_line.values():
        starts = [{m.begin - p for p in _occurrences(sentence, m.text)} for m in line_mentions]
        agreed = set.intersection(*starts)
        votes.update(agreed or set.union(*starts))
    offset = votes.most_common(1)[0][0] if votes else 0
    outside = {(m.path, m.line): m for m in mentions if not 0 <= m.begin - offset <= len(sentence) - len(m.text)}
    for m in outside.values():
        report.skip(Malformed(m.path, m.line, "offsets outside the sentence",
                              f"offsets {m.begin}-{m.begin + len(m.text)} of {m.text!r} fall outside its sentence "
                              f"(document offsets {offset}-{offset + len(sentence)} by the other mentions)"), strict)
    spans = []
    for m in mentions:
        if (m.path, m.line) in outside:
            continue
        report.mentions += 1
        found = _occurrences(sentence, m.text)
        if not found:
            report.unlocatable += 1
            report.problem(m.path, m.line, f"mention {m.text!r} not found in its sentence")
            continue
        want = m.begin - offset
        if want in found:
            report.located_by_offsets += 1
            pos = want
        else:
            report.located_nearest += 1
            pos = min(found, key=lambda p: abs(p - want))
        report.not_first_occurrence += pos != found[0]
        if m.label in labels:
            spans.append((m, (pos, pos + len(m.text), m.label)))
    return spans


def _relations(located: list[tuple[_Mention, Span]], spans: list[Span],
               report: CorpusReport) -> list[tuple[int, int]]:
    """The (drug, effect or dose) pairs of a sentence's lines as indices into its kept ``spans``.

    A pair whose drug or effect the overlap policy dropped (a drug nested in its effect,
    "heparin-induced thrombocytopenia") is lost, and counted."""
    index = {span: i for i, span in enumerate(spans)}
    by_line: dict[tuple[Path, int], dict[str, Span]] = defaultdict(dict)
    for m, span in located:
        by_line[(m.path, m.line)]["drug" if m.label == "DRUG" else "other"] = span
    pairs = set()
    for line in by_line.values():
        if len(line) < 2:
            continue  # the line's effect or dose is a type not asked for
        drug, other = index.get(line["drug"]), index.get(line["other"])
        if drug is None or other is None:
            report.relations_dropped += 1
        elif (drug, other) in pairs:
            report.duplicate_relation_lines += 1
        else:
            pairs.add((drug, other))
    report.relations += len(pairs)
    return sorted(pairs)


OVERLAPS = ("outer", "drop")
"""Overlap policies: ``outer`` keeps the outer of nested spans and the longer of crossing ones (a
tagger then learns "heparin-induced thrombocytopenia" whole); ``drop`` removes every span that
overlaps another, both of them, with their relations: the published ADE results' variant, which
leaves out the relations with overlapping entities."""


def resolve_overlaps(spans: Sequence[Span], report: CorpusReport | None = None, policy: str = "outer") -> list[Span]:
    """Apply the overlap policy (:data:`OVERLAPS`) after merging duplicates."""
    unique = sorted(set(spans))
    if report is not None:
        report.duplicate_spans += len(spans) - len(unique)
    if policy == "drop":
        kept = [s for s in unique if not any(o is not s and o[0] < s[1] and s[0] < o[1] for o in unique)]
        if report is not None:
            report.overlapping_dropped += len(unique) - len(kept)
        return kept
    kept: list[Span] = []
    # Longest first, so a span is only ever dropped in favour of one at least as long.
    for span in sorted(unique, key=lambda s: (-(s[1] - s[0]), s[0], s[2])):
        start, end, _ = span
        clash = next((k for k in kept if k[0] < end and start < k[1]), None)
        if clash is None:
            kept.append(span)
        elif report is not None:
            if (clash[0], clash[1]) == (start, end):
                report.same_extent_other_label_dropped += 1
            elif clash[0] <= start and end <= clash[1]:
                report.nested_dropped += 1
            else:
                report.crossing_dropped += 1
    return sorted(kept)


def read_ade(corpus_dir: str | Path, labels: Sequence[str] = DEFAULT_LABELS, include_negative: bool = True,
             strict: bool = False, overlaps: str = "outer") -> tuple[list[Sentence], CorpusReport]:
    """Read the ADE corpus in ``corpus_dir`` into sentences with their spans, merged per sentence.

    ``labels`` picks the entity types (any of DRUG, AE, DOSE); ``overlaps`` the policy for
    overlapping mentions (:data:`OVERLAPS`). Malformed lines are skipped and
    reported; with ``strict`` the first one (in the files' order, once all are read) raises
    :class:`InputError`.
    """
    corpus_dir = Path(corpus_dir)
    unknown = set(labels) - set(ALL_LABELS)
    if unknown:
        raise InputError(corpus_dir, f"unknown entity type(s) {sorted(unknown)}; choose from {ALL_LABELS}")
    if corpus_dir.exists() and not corpus_dir.is_dir():
        raise InputError(corpus_dir, "is a file, not a corpus folder" if corpus_dir.is_file()
                         else "is a pipe or a device, not a corpus folder (prepare reads a corpus more than once)")
    if not corpus_dir.is_dir():
        raise InputError(corpus_dir, "corpus folder not found (see corpora/README.md for how to get it)")
    report = CorpusReport()
    grouped: dict[tuple[str, str], list[_Mention]] = {}
    files = [(AE_FILE, "AE")] + ([(DOSE_FILE, "DOSE")] if "DOSE" in labels else [])
    for name, label in files:
        path = corpus_dir / name
        count = 0
        for number, line in read_lines(path):
            count += 1
            if not line.strip(" \t"):  # str.strip() would also take U+001C-U+001F, which are malformed
                report.blank_lines += 1
                continue
            try:
                pmid, sentence, mentions = _parse_relation(path, number, line, label)
            except Malformed as err:
                report.skip(err, strict)
                continue
            grouped.setdefault((pmid, sentence), []).extend(mentions)
        report.lines[name] = count

    sentences = []
    for (pmid, text), mentions in grouped.items():
        located = _locate(text, mentions, labels, report, strict)
        spans = resolve_overlaps([span for _, span in located], report, overlaps)
        sentences.append(Sentence(text=text, spans=spans, doc_id=pmid,
                                  relations=_relations(located, spans, report)))

    if include_negative:
        path = corpus_dir / NEG_FILE
        count = 0
        negatives: set[tuple[str, str]] = set()
        for number, line in read_lines(path):
            count += 1
            if not line.strip(" \t"):  # str.strip() would also take U+001C-U+001F, which are malformed
                report.blank_lines += 1
                continue
            parts = line.split(" ", 2)
            try:
                if len(parts) != 3 or parts[1] != "NEG" or not parts[0].strip() or not parts[2].strip():
                    raise Malformed(path, number, "not 'PubMed-ID NEG sentence'",
                                    f"expected 'PubMed-ID NEG sentence', found {line[:60]!r}")
                pmid = _check_line(path, number, line, parts[0])
            except Malformed as err:
                report.skip(err, strict)
                continue
            text = parts[2]
            if (pmid, text) in negatives:
                report.duplicate_negative_lines += 1
                continue
            negatives.add((pmid, text))
            if (pmid, text) in grouped:
                report.negative_also_positive += 1
                continue
            sentences.append(Sentence(text=text, doc_id=pmid, negative=True))
        report.lines[NEG_FILE] = count

    if report.first_malformed is not None:
        raise report.first_malformed
    report.sentences = len(sentences)
    report.negative_sentences = sum(s.negative for s in sentences)
    for s in sentences:
        report.entities.update(label for _, _, label in s.spans)
    return sentences, report
