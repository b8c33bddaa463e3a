"""``adelabel prepare``: corpus files → split, tokenised sentences and word vectors in a data folder.

The data folder holds ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` (one sentence with its spans per
line), the same splits as CoNLL files for other tools, ``vectors.bin`` (word2vec binary format) and
``manifest.json`` (what was read, kept and dropped, split sizes, vector coverage, seed and versions).

Word2vec is trained on the training split only. The corpus's dev and test sentences are stand-ins for
abstracts nobody has seen; letting their words into the vectors would flatter every score measured on
them.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from adelabel.atomic import atomic_dir, json_with, sha256
from adelabel.corpus import Sentence
from adelabel.corpus.ade import DEFAULT_LABELS, read_ade
from adelabel.corpus.conll import write_conll
from adelabel.embeddings import coverage, read_pretrained, save_vectors, select_vectors, train_word2vec
from adelabel.errors import AdelabelError
from adelabel.split import SPLITS, split_by_document
from adelabel.tags import spans_to_tags
from adelabel.text import tokenize
from adelabel.vocab import normalize
from adelabel.versions import versions

MANIFEST = "manifest.json"
is_data_dir = json_with(MANIFEST, "labels", "splits")
VECTORS = "vectors.bin"


def write_jsonl(path: Path, sentences: Sequence[Sentence]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for s in sentences:
            fh.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")


def read_split(data_dir: str | Path, split: str) -> list[Sentence]:
    """Sentences of one split of a prepared data folder."""
    from adelabel.corpus.files import read_lines
    from adelabel.errors import InputError

    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise InputError(path, "prepared split not found; run `adelabel prepare` first")
    expected = read_manifest(data_dir).get("files", {}).get(path.name)
    if expected is not None and sha256(path) != expected:
        raise InputError(path, "checksum mismatch with manifest.json (changed since `adelabel prepare` wrote it)")
    out = []
    for number, line in read_lines(path):
        try:
            out.append(Sentence.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(path, f"not a prepared sentence ({err})", number) from None
    return out


def prepare(corpus: str | Path, out: str | Path, seed: int = 13, labels: Sequence[str] = DEFAULT_LABELS,
            include_negative: bool = True, vectors: str | Path | None = None, dim: int = 200,
            w2v_epochs: int = 20, max_vectors: int = 200_000, strict: bool = False,
            log: Callable[[str], None] = print) -> dict:
    """Read, split, tokenise and tag the corpus and get word vectors; returns the manifest.

    Everything is written into a temporary folder beside ``out`` that replaces it when complete, so a
    killed run leaves the old data folder or none, never new splits beside an old manifest."""
    pretrained = read_pretrained(vectors) if vectors else None  # a bad file is refused before any work
    sentences, report = read_ade(corpus, labels=labels, include_negative=include_negative, strict=strict)
    for line in report.summary():
        log(line)
    if not sentences:
        raise AdelabelError(f"{corpus}: no sentences read")
    splits = split_by_document(sentences, seed)
    with atomic_dir(out, is_data_dir) as tmp:
        tokens, misaligned = _write_splits(tmp, splits, log)
        cov, source, kv = _write_vectors(tmp, tokens, vectors, pretrained, dim, seed, w2v_epochs, max_vectors, log)
        manifest = {
            "corpus": str(corpus), "seed": seed, "labels": list(labels), "include_negative": include_negative,
            "splits": {n: {"documents": len({s.doc_id for s in splits[n]}), "sentences": len(splits[n]),
                           "negative_sentences": sum(s.negative for s in splits[n])} for n in SPLITS},
            "report": report.summary(), "misaligned_boundaries": misaligned,
            "vectors": {"source": source, "words": len(kv), "dim": kv.vector_size, "coverage": cov},
            "versions": versions(),
            # Checked when a split is read: a data folder is only ever used as prepare wrote it.
            "files": {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out}/")
    return manifest


def _write_splits(out: Path, splits: dict[str, list[Sentence]],
                  log: Callable[[str], None]) -> tuple[dict[str, list[list[str]]], int]:
    """Each split as JSONL and CoNLL; returns their normalised tokens (for word2vec) and how many
    entity boundaries fell inside a token."""
    tokens: dict[str, list[list[str]]] = {}
    misaligned = 0
    for name in SPLITS:
        write_jsonl(out / f"{name}.jsonl", splits[name])
        spans = [tokenize(s.text) for s in splits[name]]
        tokens[name] = [[normalize(s.text[a:b]) for a, b in t] for s, t in zip(splits[name], spans)]
        tagged = []
        for s, t in zip(splits[name], spans):
            tags, bad = spans_to_tags(t, s.spans)
            misaligned += bad
            tagged.append(([s.text[a:b] for a, b in t], tags))
        write_conll(out / f"{name}.conll", tagged)
        docs = len({s.doc_id for s in splits[name]})
        log(f"{name}: {docs:,} documents, {len(splits[name]):,} sentences, "
            f"{sum(map(len, tokens[name])):,} tokens, {sum(len(s.spans) for s in splits[name]):,} entities")
    log(f"entity boundaries inside a token (widened to the token): {misaligned:,}")
    return tokens, misaligned


def _write_vectors(out: Path, tokens: dict, vectors, pretrained, dim: int, seed: int, w2v_epochs: int,
                   max_vectors: int, log: Callable[[str], None]):
    if pretrained is not None:
        corpus_words = {w for name in SPLITS for sent in tokens[name] for w in sent}
        kv = select_vectors(pretrained, keep=corpus_words, max_words=max_vectors)
        source = str(vectors)
    else:
        log(f"training word2vec (dim {dim}, {w2v_epochs} epochs) on the training split ...")
        kv = train_word2vec(tokens["train"], dim=dim, seed=seed, epochs=w2v_epochs)
        source = "word2vec trained on the training split"
    save_vectors(kv, out / VECTORS)
    cov = {name: dict(zip(("types", "tokens"), coverage(kv, (w for s in tokens[name] for w in s))))
           for name in SPLITS}
    log(f"vectors: {len(kv):,} words, dim {kv.vector_size}; coverage of "
        + ", ".join(f"{n} {c['tokens']:.1%} of tokens ({c['types']:.1%} of types)" for n, c in cov.items()))
    return cov, source, kv


def read_manifest(data_dir: str | Path) -> dict:
    from adelabel.errors import InputError

    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise InputError(path, "no prepared data here; run `adelabel prepare` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(path, f"corrupt manifest ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("labels"), list):
        raise InputError(path, "not a data manifest (no list of labels)")
    return manifest
