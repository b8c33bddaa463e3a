"""``adelabel prepare``: corpus files → split, tokenised sentences and word vectors in a data folder.

The data folder holds ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` (one sentence with its spans, or
a labelled text, per line), the same splits as CoNLL files for other tools (not for labelled texts), ``vectors.bin`` (word2vec binary format) and
``manifest.json`` (what was read, kept and dropped, split sizes, vector coverage, seed and versions).

Word2vec is trained on the training split only. The corpus's dev and test sentences are stand-ins for
abstracts nobody has seen; letting their words into the vectors would flatter every score measured on
them.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adelabel.atomic import atomic_dir, is_data_dir, sha256
from adelabel.config import DEFAULT_SEED
from adelabel.corpus import Sentence, sentence_class
from adelabel.corpus.ade import DEFAULT_LABELS, read_ade
from adelabel.corpus.labelled import read_labelled
from adelabel.corpus.conll import write_conll
from adelabel.embeddings import (W2V_DIM, W2V_EPOCHS, coverage, make_keyed_vectors, read_pretrained, save_vectors,
                                 select_vectors, train_word2vec)
from adelabel.errors import AdelabelError, InputError
from adelabel.split import SPLITS, split_by_document
from adelabel.tags import spans_to_tags, tags_to_spans
from adelabel.text import tokenize
from adelabel.vocab import normalize
from adelabel.versions import versions

if TYPE_CHECKING:
    from adelabel.encoder_vectors import Encoder

MANIFEST = "manifest.json"
VECTORS = "vectors.bin"


def write_jsonl(path: Path, sentences: Sequence[Sentence]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for s in sentences:
            fh.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")


def check_listed(data_dir: str | Path, path: Path, manifest: dict | None = None) -> None:
    """``path`` of a prepared data folder as ``prepare`` wrote it: its checksum the manifest's (the
    folder's ``manifest``, read here unless given)."""
    files = (manifest or read_manifest(data_dir)).get("files")
    expected = files.get(path.name) if isinstance(files, dict) else None
    if expected is None and path.is_file():
        raise InputError(Path(data_dir) / MANIFEST, f"does not list {path.name}, which `adelabel prepare` lists "
                                                     "with its checksum; prepare the data again")
    if path.is_file() and sha256(path) != expected:
        raise InputError(path, "checksum mismatch with manifest.json (changed since `adelabel prepare` wrote it)")


def read_split(data_dir: str | Path, split: str) -> list[Sentence]:
    """Sentences of one split of a prepared data folder."""
    from adelabel.corpus.files import read_lines

    path = Path(data_dir) / f"{split}.jsonl"
    _a_folder(data_dir)
    if not path.is_file():
        raise InputError(path, "prepared split not found; run `adelabel prepare` first")
    manifest = read_manifest(data_dir)
    check_listed(data_dir, path, manifest)
    labels = set(manifest["labels"])
    out = []
    for number, line in read_lines(path):
        try:
            sentence = Sentence.from_dict(json.loads(line))
        except (ValueError, RecursionError) as err:
            raise InputError(path, f"not a prepared sentence ({err})", number) from None
        if unknown := {kind for *_, kind in sentence.spans} - labels:
            raise InputError(path, f"a span of type {sorted(unknown)[0]!r}, which manifest.json's labels "
                                   f"({', '.join(sorted(labels))}) do not name", number)
        out.append(sentence)
    return out


def read_corpus(corpus: str | Path, format: str = "ade", labels: Sequence[str] = DEFAULT_LABELS,
                include_negative: bool = True, strict: bool = False,
                log: Callable[[str], None] = print,
                overlaps: str = "outer", warn: Callable[[str], None] | None = None,
                ) -> tuple[list[Sentence], dict[int, int], list[str]]:
    """The corpus's sentences (or labelled texts), the source line of each labelled text (by the
    sentence's ``id``; empty for the ADE corpus) and the reader's report, which is logged.
    ``overlaps``: the ADE corpus's policy for overlapping mentions (adelabel.corpus.ade.OVERLAPS).
    ``warn``: told in one line of the malformed lines skipped, where ``log`` is silenced (``--quiet``)."""
    numbers: dict[int, int] = {}
    if format == "labelled":
        sentences, lines, report = read_labelled(corpus, strict=strict)
        numbers = dict(zip(map(id, sentences), lines))
    elif format == "conll":
        from adelabel.corpus.conll import read_conll_corpus

        sentences, report = read_conll_corpus(corpus, strict=strict)
    elif format == "brat":
        from adelabel.corpus.brat import read_brat

        sentences, report = read_brat(corpus, strict=strict)
    else:
        sentences, report = read_ade(corpus, labels=labels, include_negative=include_negative, strict=strict,
                                     overlaps=overlaps)
    if not sentences:
        first = f"; the first line skipped: {report.problems[0]}" if report.problems else ""
        raise AdelabelError(f"{corpus}: no sentences read{first}")
    _refuse_overlong(corpus, sentences, numbers)
    if format == "labelled" and len({s.label for s in sentences}) < 2:  # nothing a classifier could learn
        raise AdelabelError(f"{corpus}: every text has the label {sentences[0].label!r}; a classifier needs at "
                            "least two classes")
    for line in report.summary():
        log(line)
    if warn is not None and report.problems:
        warn(f"{corpus}: {len(report.problems):,} malformed line(s) skipped (first: {report.problems[0]})")
    return sentences, numbers, report.summary()


LONGEST_SENTENCE = 1_000
"""Tokens a sentence to tag may hold in a corpus (the ADE corpus's longest holds 131): training and
scoring pad a batch to its longest sentence, so one line of a million words (a file without sentence
breaks) took every batch it joined past any memory. ``tag`` reads such lines in windows; a corpus must
break them into sentences."""


def _refuse_overlong(corpus: str | Path, sentences: Sequence[Sentence], numbers: dict[int, int]) -> None:
    from adelabel.inference import MAX_TEXT_TOKENS
    from adelabel.text import tokenize

    for s in sentences:
        limit, what = (MAX_TEXT_TOKENS, "text") if s.label else (LONGEST_SENTENCE, "sentence")
        if len(s.text) > limit and (n := len(tokenize(s.text))) > limit:  # no more tokens than characters
            document = "" if id(s) in numbers else f"document {s.doc_id}: "
            raise InputError(corpus, f"{document}a {what} of {n:,} tokens (it begins {s.text[:40]!r}), more than "
                                     f"the {limit:,} a model trains on at once; "
                                     + ("break it into sentences" if what == "sentence" else "cut it into shorter texts"),
                             line=numbers.get(id(s)))


def own_types(corpus: str | Path, format: str, sentences: list[Sentence], labels: Sequence[str],
              include_negative: bool) -> tuple[list[Sentence], tuple[str, ...]]:
    """A CoNLL or brat corpus's entity types come from its data (not ``--types``), and its sentences
    without entities are the gate's negatives, left out without ``include_negative``; the ADE corpus's
    reader applied both already."""
    if format == "ade" and sentences and not any(s.spans for s in sentences):
        # Every relation line malformed (another separator, say): the counts above say why.
        raise AdelabelError(f"{corpus}: no {', '.join(labels)} entity read; a tagger needs some")
    if format not in ("conll", "brat"):
        return sentences, tuple(labels)
    found = tuple(sorted({label for s in sentences for *_, label in s.spans}))
    if not found:
        raise AdelabelError(f"{corpus}: no entities in it; a tagger needs some")
    return (sentences if include_negative else [s for s in sentences if not s.negative]), found


def prepare(corpus: str | Path, out: str | Path, seed: int = DEFAULT_SEED, labels: Sequence[str] = DEFAULT_LABELS,
            include_negative: bool = True, vectors: str | Path | None = None, dim: int = W2V_DIM,
            w2v_epochs: int = W2V_EPOCHS, max_vectors: int = 200_000, strict: bool = False,
            log: Callable[[str], None] = print, format: str = "ade", progress: bool = False,
            overlaps: str = "outer", encoder_vectors: str | None = None,
            warn: Callable[[str], None] | None = None) -> dict:
    """Read, split, tokenise and tag the corpus and get word vectors; returns the manifest.

    ``encoder_vectors``: ``minilm`` or an encoder checkpoint folder whose states, averaged per word over
    the training split, are appended to each word vector (adelabel/encoder_vectors.py).

    ``format``: ``ade`` (the ADE corpus folder), ``labelled`` (a file of ``label<TAB>text`` lines,
    adelabel/corpus/labelled.py: texts with a class and no entities, for ``train --task classify``),
    ``conll`` (a BIO file) or ``brat`` (a folder of .txt/.ann pairs): any entity types, read from the
    data.
    Everything is written into a temporary folder beside ``out`` that replaces it when complete, so a
    killed run leaves the old data folder or none, never new splits beside an old manifest."""
    pretrained = read_pretrained(vectors, quiet=not progress) if vectors else None  # a bad file is refused before any work
    encoder = None
    if encoder_vectors:  # loaded before any work, so a bad one is refused first
        from adelabel.encoder_vectors import Encoder

        encoder = Encoder(encoder_vectors)
    if format == "labelled":
        labels, include_negative = (), False
    skipped: list[str] = []  # the reader's one line on malformed lines, said once the corpus proves usable
    sentences, numbers, report = read_corpus(corpus, format, labels, include_negative, strict, log, overlaps,
                                             None if warn is None else skipped.append)
    sentences, labels = own_types(corpus, format, sentences, labels, include_negative)
    try:
        splits = split_by_document(sentences, seed)
    except AdelabelError as err:  # too few documents: said of the corpus that has them
        raise InputError(corpus, str(err)) from None
    for line in skipped:
        warn(line)
    if format == "labelled":
        drop_unseen_classes(splits, numbers, corpus, strict, log)
    # As typed, "corpora/sample" meant nothing from another folder and made two same data folders differ.
    settings = {"corpus": str(Path(corpus).resolve()), "format": format, "seed": seed, "labels": list(labels),
                "include_negative": include_negative, "overlaps": overlaps, "report": report}
    from adelabel.tasks import positive_class

    # The positive class of two is fixed over the whole corpus, not by one seed's training split: with
    # near-even classes that would name one class under one seed and the other under the next, and F1,
    # ROC-AUC and the threshold would be about different classes from run to run.
    counts = Counter(sentence_class(s) for split in splits.values() for s in split)
    settings["classifier"] = {"classes": sorted(counts), "positive": positive_class(counts, format)}
    if format == "labelled" and settings["classifier"]["positive"] is not None:
        log(f"positive class (the rarer of two; what F1, ROC-AUC and the threshold are about): "
            f"{settings['classifier']['positive']}")
    return write_data(out, splits, settings, vectors, pretrained, dim, seed, w2v_epochs, max_vectors, log, progress,
                      encoder=encoder)


def write_data(out: str | Path, splits: dict[str, list[Sentence]], settings: dict, vectors, pretrained, dim: int,
               seed: int, w2v_epochs: int, max_vectors: int, log: Callable[[str], None], progress: bool = False,
               encoder: Encoder | None = None) -> dict:
    """A data folder of these splits: JSONL (and CoNLL), word vectors trained on the training split
    (or picked from ``pretrained``), with ``encoder``'s averages appended, and the manifest, which
    holds ``settings``; returns the manifest."""
    with atomic_dir(out, is_data_dir) as tmp:
        tokens, misaligned = _write_splits(tmp, splits, log)
        cov, source, kv, encoder_only = _write_vectors(tmp, tokens, vectors, pretrained, dim, seed, w2v_epochs,
                                                       max_vectors, log, progress, encoder,
                                                       [s.text for s in splits["train"]])
        manifest = {
            **settings,
            "splits": {n: {"documents": len({s.doc_id for s in splits[n]}), "sentences": len(splits[n]),
                           "negative_sentences": sum(s.negative for s in splits[n]),
                           "classes": dict(sorted(Counter(map(sentence_class, splits[n])).items()))}
                       for n in SPLITS},
            "misaligned_boundaries": misaligned,
            "vectors": {"source": source, "words": len(kv), "dim": kv.vector_size, "coverage": cov,
                        # the last words of vectors.bin, with the encoder's part alone (no file vector)
                        **({"encoder_only": encoder_only} if encoder_only else {})},
            "versions": versions(),
            # Checked when a split is read: a data folder is only ever used as prepare wrote it.
            "files": {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out}/")
    return manifest


def drop_unseen_classes(splits: dict[str, list[Sentence]], numbers: dict[int, int], corpus, strict: bool,
                         log: Callable[[str], None]) -> None:
    """A dev or test text whose class no training text has cannot be learnt or scored: skipped and
    counted, or an error naming its line under ``strict``."""
    seen = {s.label for s in splits["train"]}
    if len(seen) < 2:  # the split dealt every text of the other classes to dev and test: train would refuse it
        missing = sorted({s.label for name in SPLITS[1:] for s in splits[name]} - seen)
        raise InputError(corpus, f"the training split holds one class only ({', '.join(sorted(seen))}; "
                                 f"{', '.join(missing)} went to dev and test); a classifier needs at least two: "
                                 "prepare with another --seed, or with more documents")
    for name in SPLITS[1:]:
        unseen = [s for s in splits[name] if s.label not in seen]
        if unseen and strict:
            raise InputError(corpus, f"label {unseen[0].label!r} is in the {name} split but not in the "
                                     "training split", numbers[id(unseen[0])])
        if unseen:
            log(f"{name}: {len(unseen):,} texts skipped: their label is not in the training split "
                f"({', '.join(sorted({s.label for s in unseen}))}; first at line {numbers[id(unseen[0])]})")
            splits[name] = [s for s in splits[name] if s.label in seen]
            if not splits[name]:
                raise InputError(corpus, f"the {name} split is left with no text of a class the training split "
                                         "has; prepare with another --seed, or with more documents")


def _write_splits(out: Path, splits: dict[str, list[Sentence]],
                  log: Callable[[str], None]) -> tuple[dict[str, list[list[str]]], int]:
    """Each split as JSONL and CoNLL; returns their normalised tokens (for word2vec) and how many
    entity boundaries fell inside a token."""
    tokens: dict[str, list[list[str]]] = {}
    misaligned = lost = 0
    for name in SPLITS:
        write_jsonl(out / f"{name}.jsonl", splits[name])
        spans = [tokenize(s.text) for s in splits[name]]
        tokens[name] = [[normalize(s.text[a:b]) for a, b in t] for s, t in zip(splits[name], spans)]
        if any(s.spans or not s.label for s in splits[name]):  # labelled texts have no tags to write
            tagged = []
            for s, t in zip(splits[name], spans):
                tags, bad = spans_to_tags(t, s.spans)
                misaligned += bad
                lost += len(s.spans) - len(tags_to_spans(t, tags))
                tagged.append((s.doc_id, [s.text[a:b] for a, b in t], tags))
            write_conll(out / f"{name}.conll", tagged)
        docs = len({s.doc_id for s in splits[name]})
        labelled = all(s.label for s in splits[name])
        what = (", ".join(f"{c} {n:,}" for c, n in sorted(Counter(s.label for s in splits[name]).items()))
                if labelled else f"{sum(len(s.spans) for s in splits[name]):,} entities")
        log(f"{name}: {docs:,} documents, {len(splits[name]):,} {'texts' if labelled else 'sentences'}, "
            f"{sum(map(len, tokens[name])):,} tokens, {what}")
    if not labelled:
        log(f"entity boundaries inside a token (widened to the token): {misaligned:,}")
        if lost:  # zero on the ADE corpus; a brat or CoNLL corpus may annotate inside words
            log(f"entities the tags cannot hold (on no token, or on a token another entity takes; left out of "
                f"training and of the gold the scores count): {lost:,}")
    return tokens, misaligned


def _write_vectors(out: Path, tokens: dict, vectors, pretrained, dim: int, seed: int, w2v_epochs: int,
                   max_vectors: int, log: Callable[[str], None], progress: bool = False,
                   encoder: Encoder | None = None, train_texts: Sequence[str] = ()):
    extra: list[str] = []  # training words the vectors file lacks, which get the encoder's part alone
    if pretrained is not None:
        corpus_words = {w for name in SPLITS for sent in tokens[name] for w in sent}
        kv, merged = select_vectors(pretrained.kv, keep=corpus_words, max_words=max_vectors)
        total = len(pretrained.kv) + pretrained.duplicates
        dropped = len(pretrained.kv) - len(kv) - merged
        log(f"{vectors}: {len(kv):,} of its {total:,} entries kept"
            + (f"; {dropped:,} left out (past the first {max_vectors:,}, by frequency, and not in the corpus)"
               if dropped else "")
            + (f"; {merged:,} merged into an earlier entry (the same word once normalised)" if merged else "")
            + (f"; {pretrained.duplicates:,} given twice (the first kept)" if pretrained.duplicates else "")
            + (f"; {pretrained.not_utf8:,} words not UTF-8 (read with replacement characters)"
               if pretrained.not_utf8 else ""))
        source = str(vectors)
    else:
        log(f"training word2vec (dim {dim}, {w2v_epochs} epochs) on the training split ...")
        kv = train_word2vec(tokens["train"], dim=dim, seed=seed, epochs=w2v_epochs, quiet=not progress)
        source = "word2vec trained on the training split"
    if encoder is not None:
        from adelabel.encoder_vectors import append_encoder_vectors, average_states

        log(f"averaging the states of encoder {encoder.name} over the training split ...")
        averages = average_states(train_texts, encoder, quiet=not progress)
        words, before, rows = list(kv.index_to_key), kv.vector_size, kv.vectors
        if pretrained is not None:
            # Training words the file lacks (rare drug names, often) still get the encoder's part, with
            # zeros for the file's: left out, they would start random, and the encoder read them.
            extra = sorted(w for w in averages if w not in kv.key_to_index)
            if extra:
                log(f"{len(extra):,} training words without a vector in {vectors} get the encoder's part alone")
                words += extra
                rows = np.concatenate([rows, np.zeros((len(extra), before), dtype=rows.dtype)])
        kv = make_keyed_vectors(words, append_encoder_vectors(words, rows, averages,
                                                              scale_rows=len(words) - len(extra)))
        # Fewer than DIM where the encoder is narrower or read fewer words.
        source += (f", with {encoder.name}'s states averaged over the training split "
                   f"({kv.vector_size - before} dimensions)")
    save_vectors(kv, out / VECTORS)
    cov = {name: dict(zip(("types", "tokens"), coverage(kv, (w for s in tokens[name] for w in s))))
           for name in SPLITS}
    log(f"vectors: {len(kv):,} words, dim {kv.vector_size}; coverage of "
        + ", ".join(f"{n} {c['tokens']:.1%} of tokens ({c['types']:.1%} of types)" for n, c in cov.items()))
    return cov, source, kv, len(extra)


def _a_folder(data_dir: str | Path) -> None:
    if Path(data_dir).is_file():  # not "data.txt/manifest.json: no prepared data here"
        raise InputError(data_dir, "is a file, not a prepared data folder")


def read_manifest(data_dir: str | Path) -> dict:

    path = Path(data_dir) / MANIFEST
    _a_folder(data_dir)
    if not path.is_file():
        raise InputError(path, "no prepared data here; run `adelabel prepare` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InputError(path, f"corrupt manifest ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("labels"), list):
        raise InputError(path, "not a data manifest (no list of labels)")
    labels = manifest["labels"]
    if not all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in labels) \
            or len(set(labels)) < len(labels):
        raise InputError(path, f"labels: expected entity types or classes, each once and without white space, "
                               f"found {labels!r}")
    return manifest
