"""brat standoff folders: ``NAME.txt`` (the text) beside ``NAME.ann`` (``T`` lines: an entity's type,
character offsets and text; ``R`` lines: a relation between two entities), the layout annotation
tools open and ``adelabel tag --format brat`` writes.

Each text is one document, split into sentences as ``tag --input-format paragraphs`` splits a
paragraph: a single line break is white space (wrapped text, and what ``tag`` writes from paragraphs,
keeps its sentences and the entities that cross a line end), a blank line or a list item ends a
sentence; an entity keeps its type (the
types are whatever the files name), a relation its two entities as a pair from the DRUG (whichever
argument names it: some schemes write the effect first, ``ADE-Drug Arg1:effect Arg2:drug``). A relation's label is
counted, not learnt: the relation head tells related pairs from unrelated ones, so two labels between
the same types (Causes, Treats) would be learnt as one, and the report says so. Discontinuous entities,
nested or crossing ones (one tag per token: the ADE reader's rule keeps the outer or longer), entities
across a sentence break, and relations that lose an entity so are counted and left out; other
annotation lines (events, attributes, notes) are counted and ignored.
"""
from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adelabel.corpus import EntityReport, Sentence, relates
from adelabel.corpus.ade import resolve_overlaps
from adelabel.corpus.files import check_file, read_lines
from adelabel.errors import InputError
from adelabel.text import LINE_BREAKS, LINE_BREAKS_TO_SPACE, split_sentences

_ENTITY = re.compile(r"(T\d+)\t(\S+) (\d{1,18}) (\d{1,18})\t(.*)")  # 18 digits: more than any text holds
_RELATION = re.compile(r"(R\d+)\t(\S+) Arg1:(T\d+) Arg2:(T\d+)\s*")
_FRAGMENTS = re.compile(r"(T\d+)\t(\S+) (\d{1,18} \d{1,18}(?:;\d{1,18} \d{1,18})+)\t(.*)")  # a discontinuous entity
_EVENT = re.compile(r"E\d+\t\S+:(T\d+)(?:\s.*)?")  # its trigger: a T line that marks the event, no entity
_ID = re.compile(r"[TREAMN#]\d+")  # brat's ids; a "#" line without one is a free comment
# A line break (CRLF as one) inside a mention written with a space there.
_MENTION_BREAK = re.compile(r"\r\n|[" + re.escape(LINE_BREAKS) + "]")


NOT_FROM_A_DRUG = "relations not between a DRUG and another type (relations go from a drug)"


@dataclass
class BratReport(EntityReport):
    relations: int = 0
    relation_labels: Counter = field(default_factory=Counter)  # label -> relations kept
    labels_by_pair: dict = field(default_factory=dict)  # "DRUG-AE" -> the labels its relations carry
    left_out: Counter = field(default_factory=Counter)  # reason -> annotations left out

    def summary(self) -> list[str]:
        labels = ", ".join(f"{label} {n:,}" for label, n in sorted(self.relation_labels.items()))
        # Labels on different pair types stay apart (DRUG-AE, DRUG-DOSE); on one pair type they do not.
        merged = [f"note: the relation labels {', '.join(sorted(labels))} of {pair} pairs are learnt as one "
                  "(a drug related to another entity); prepare one label's relations to tell them apart"
                  for pair, labels in sorted(self.labels_by_pair.items()) if len(labels) > 1]
        # Relations go from the type named DRUG exactly; n2c2's "Drug" is another type to it.
        drug_like = sorted(t for t in self.entities if t.upper() == "DRUG" and t != "DRUG")
        if drug_like and self.left_out[NOT_FROM_A_DRUG]:
            merged.append(f"note: relations go from entities of type DRUG, and {drug_like[0]} is another type; "
                          f"rename it DRUG in the .ann files to learn its relations")
        return [f"read: {self.path}: {self.documents:,} documents (.txt with .ann)", *self.counts(),
                f"relations: {self.relations:,}" + (f" ({labels})" if labels else ""), *merged,
                *(f"left out: {n:,} {reason}" for reason, n in sorted(self.left_out.items()))]


def read_brat(folder: str | Path, strict: bool = False) -> tuple[list[Sentence], BratReport]:
    """Sentences of every ``.txt``/``.ann`` pair in ``folder`` (sorted by name), and the report."""
    folder = Path(folder)
    report = BratReport(path=str(folder))
    anns = sorted(p for p in folder.glob("*.ann") if not p.name.startswith("."))
    # Said, not silently passed over: hidden files (macOS's "._NAME.ann" holds no text) and names whose
    # suffix is not brat's lower-case one, which brat does not open either.
    if hidden := [p for p in folder.iterdir() if p.name.startswith(".") and p.suffix in (".ann", ".txt")]:
        report.left_out["hidden files (names starting with '.')"] += len(hidden)
    if upper := sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in (".ann", ".txt") and p.suffix not in (".ann", ".txt")):
        report.left_out[f"files whose suffix is not .txt or .ann in lower case ({upper[0].name}; rename them)"] += len(upper)
    if not anns:
        raise InputError(folder, "no .ann files here (a brat folder holds NAME.txt and NAME.ann pairs)")
    # Said, not silently passed over: texts nobody annotated, and collections nested in subfolders.
    lone = [t for t in sorted(folder.glob("*.txt"))
            if not t.name.startswith(".") and not t.with_suffix(".ann").is_file()]
    if lone and strict:
        raise InputError(lone[0], f"has no annotations beside it ({lone[0].with_suffix('.ann').name} not found; "
                                  "brat gives every text a .ann, empty where nothing is annotated)")
    if lone:
        report.left_out["texts without a .ann beside them"] += len(lone)
    if subfolders := [p for p in folder.iterdir() if p.is_dir()]:
        report.left_out["subfolders (not read; give each as --corpus)"] += len(subfolders)
    sentences: list[Sentence] = []
    for ann in anns:
        txt = ann.with_suffix(".txt")
        if not txt.is_file():
            raise InputError(ann, f"has no text beside it ({txt.name} not found)")
        try:
            # Bytes decoded as they are: brat offsets count a CRLF as two characters.
            text = txt.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(txt, f"not UTF-8 text (byte {err.start})") from None
        except OSError as err:
            raise InputError(txt, f"cannot read ({err.strerror})") from None
        check_file(ann)  # a link to nothing, say
        sentences += _document(ann, txt, text, report, strict)
        report.documents += 1
    report.count(sentences)
    return sentences, report


def _span(ann: Path, txt: Path, text: str, key: str, start: int, end: int, number: int) -> None:
    """An :class:`InputError` where ``start``-``end`` is no span of ``text``."""
    if end <= start:
        raise InputError(ann, f"{key} spans characters {start}-{end}: its end is not after its start", number)
    if end > len(text):
        raise InputError(ann, f"{key} spans characters {start}-{end}, past the end of {txt} "
                              f"({len(text):,} characters)", number)


def _same_mention(covered: str, mention: str) -> bool:
    # A mention across a line break, written with a space there (by some tools, and by tag before it
    # wrote such a mention as brat does, in pieces); a CRLF is one such break.
    return _MENTION_BREAK.sub(" ", covered) == mention.translate(LINE_BREAKS_TO_SPACE)


def _fragments(ann: Path, txt: Path, text: str, key: str, fragments: str, mention: str,
               number: int) -> tuple[int, int] | None:
    """The span of a fragmented entity whose fragments only white space parts ("essential\\nhypertension"
    annotated across a line end), or None for one that other text parts (discontinuous). Offsets or a
    text that do not hold are an :class:`InputError`, as for a single span."""
    spans = sorted(tuple(map(int, piece.split())) for piece in fragments.split(";"))
    for s, e in spans:
        _span(ann, txt, text, key, s, e, number)
    if any(b[0] < a[1] for a, b in zip(spans, spans[1:])):
        raise InputError(ann, f"{key}: its fragments {fragments} overlap", number)
    covered = " ".join(text[s:e] for s, e in spans)
    # brat joins the fragments' texts with a space.
    if not _same_mention(covered, mention) and covered.split() != mention.split():
        raise InputError(ann, f"{key}: {txt} has {covered!r} at {fragments}, not {mention!r}", number)
    if any(text[a[1]:b[0]].strip() for a, b in zip(spans, spans[1:])):
        return None
    return spans[0][0], spans[-1][1]


def _document(ann: Path, txt: Path, text: str, report: BratReport, strict: bool) -> list[Sentence]:
    entities: dict[str, tuple[int, int, str]] = {}
    relations: list[tuple[str, str, str]] = []  # (label, Arg1, Arg2)
    left: set[str] = set()  # entities left out (discontinuous), which relations may still name
    named: set[str] = set()  # the ids of relations, events, attributes, ...: unique too
    arguments: list[tuple[int, str, str, str]] = []  # (line, relation id, Arg1, Arg2): checked after reading
    triggers: set[str] = set()  # the T lines that mark an event (its type a word, not an entity)
    # An empty .ann (or one holding only the byte-order mark an editor saves) is a text with nothing
    # annotated in it.
    empty = ann.stat().st_size <= 3 and ann.read_bytes() in (b"", b"\xef\xbb\xbf")
    for number, line in () if empty else read_lines(ann):
        if not line.strip():
            continue
        key = line.partition("\t")[0]
        if _ID.fullmatch(key) and (key in entities or key in left or key in named):
            raise InputError(ann, f"{key} is defined twice (ids are unique in a brat file)", number)
        if key[:1] != "T" and _ID.fullmatch(key):  # "*" lines (equivalences) have no id of their own
            named.add(key)
        if m := _ENTITY.fullmatch(line):
            label, start, end, mention = m.group(2), int(m.group(3)), int(m.group(4)), m.group(5)
            _span(ann, txt, text, key, start, end, number)
            if not _same_mention(text[start:end], mention):
                raise InputError(ann, f"{key}: {txt} has {text[start:end]!r} at {start}-{end}, not {mention!r}", number)
            entities[key] = (start, end, label)
        elif m := _RELATION.fullmatch(line):
            relations.append((m.group(2), m.group(3), m.group(4)))
            arguments.append((number, m.group(1), m.group(3), m.group(4)))
        elif m := _FRAGMENTS.fullmatch(line):
            # Fragments parted by white space alone are one span: brat's editor writes a mention across a
            # line break of wrapped text so.
            if span := _fragments(ann, txt, text, key, m.group(3), m.group(4), number):
                entities[key] = (*span, m.group(2))
                continue
            if strict:
                raise InputError(ann, f"{key} is a discontinuous entity (fragments {m.group(3)} parted by text): "
                                      "adelabel tags contiguous spans", number)
            report.left_out["discontinuous entities"] += 1
            left.add(key)
        elif line[:1] in ("E", "A", "M", "N", "#", "*"):
            report.left_out["event, attribute, normalisation or note lines"] += 1
            if m := _EVENT.fullmatch(line):
                triggers.add(m.group(1))
        else:
            raise InputError(ann, f"not a brat annotation line: {line[:80]!r}", number)
    for key in triggers & entities.keys():
        del entities[key]
        left.add(key)
        report.left_out["event triggers (T lines an E line marks its event with; no entities)"] += 1
    # brat files need not define an entity before a relation names it: checked once every line is read.
    for number, relation, *args in arguments:
        for arg in args:
            if arg not in entities and arg not in left:
                raise InputError(ann, f"{relation} names {arg}, which no T line defines", number)
    out, where, alias = [], {}, {}
    # Entities by start, so that each sentence finds its own with a binary search: scanning them all for
    # every sentence made a long document's reading quadratic.
    by_start = sorted(entities.items(), key=lambda item: item[1][0])
    starts = [span[0] for _, span in by_start]
    for s, e in split_sentences(text):
        inside = {key: span for key, span in by_start[bisect.bisect_left(starts, s):bisect.bisect_left(starts, e)]
                  if span[1] <= e}
        # Tags hold one entity per token: of nested or crossing entities the ADE reader's rule keeps one.
        kept = set(resolve_overlaps(list(inside.values())))
        dropped = [key for key, span in inside.items() if span not in kept]
        report.left_out["nested or crossing entities (the outer or longer one kept)"] += len(dropped)
        for key in dropped:
            del inside[key]
            entities.pop(key)
            left.add(key)
        first: dict[tuple[int, int, str], str] = {}
        for key in sorted(inside, key=lambda k: int(k[1:])):  # the same span twice is one entity
            if inside[key] in first:
                alias[key] = first[inside[key]]
                del inside[key]
            else:
                first[inside[key]] = key
        keys = sorted(inside, key=lambda key: inside[key][:2])
        for position, key in enumerate(keys):
            where[key] = (len(out), position)
        spans = [(inside[key][0] - s, inside[key][1] - s, inside[key][2]) for key in keys]
        # A line break inside a sentence is white space to the tokeniser; as a space it keeps the CoNLL
        # files' "# text =" lines whole and every offset where it was.
        out.append(Sentence(text=text[s:e].translate(LINE_BREAKS_TO_SPACE), spans=spans, doc_id=ann.stem,
                            negative=not spans))
    report.left_out["entities across a sentence break"] += len(entities) - len(where) - len(alias)
    for label, a, b in relations:
        a, b = alias.get(a, a), alias.get(b, b)
        if a in where and b in where and where[a][0] == where[b][0]:
            sentence = out[where[a][0]]
            types = sentence.spans[where[a][1]][2], sentence.spans[where[b][1]][2]
            if relates(types[1], types[0]):
                a, b = b, a  # the same fact, written from the other entity
            elif not relates(*types):
                # The relation head scores a DRUG against each other entity of its sentence (adelabel/data.py,
                # candidate_pairs): kept, such a relation would be counted and never learnt.
                report.left_out[NOT_FROM_A_DRUG] += 1
                continue
            pair = (where[a][1], where[b][1])
            if pair in sentence.relations:  # written twice, or over two ids of one span (merged above)
                report.left_out["relations given twice (kept once)"] += 1
                continue
            sentence.relations.append(pair)
            report.relations += 1
            report.relation_labels[label] += 1
            report.labels_by_pair.setdefault(f"DRUG-{sentence.spans[pair[1]][2]}", set()).add(label)
        else:
            report.left_out["relations across sentences (or with an entity left out)"] += 1
    report.left_out += Counter()  # drop zero counts
    return out
