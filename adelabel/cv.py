"""``adelabel cv``: k-fold cross-validation by document, the protocol of published ADE results.

The documents (PubMed IDs, or a labelled file's document column) are shuffled with the seed and dealt
into ``folds`` folds, so no abstract is in two. For fold k the test split is fold k; its dev split is
carved from the other folds' documents; its word2vec is trained on its own training split only. Each
fold is then trained and scored exactly as ``train`` does (the test split's scores, both protocols,
relations and the sentence decision), in ``OUT/fold-K/`` (data, model, ``result.json``). A fold's
result is written when it finishes, and a killed run carries on: finished folds are kept, the fold in
progress resumes from its training checkpoint.

    OUT/cv.json     the settings, every fold's test scores, and mean and standard deviation of each
                    (rewritten after every fold; ``complete`` says whether all folds are in)
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from adelabel import atomic, model_dir
from adelabel.config import DEFAULT_SEED, Config
from adelabel.corpus import Sentence, sentence_class
from adelabel.corpus.ade import AE_FILE, DOSE_FILE, NEG_FILE
from adelabel.corpus.files import read_json_object
from adelabel.embeddings import W2V_DIM, W2V_EPOCHS
from adelabel.errors import AdelabelError, InputError
from adelabel.prepare import drop_unseen_classes, own_types, read_corpus, write_data
from adelabel.progress import duration
from adelabel.tasks import positive_class
from adelabel.train import checkpoint_dir, train
from adelabel.versions import differences, versions

SUMMARY, RESULT = "cv.json", "result.json"


DEV_FRACTION = 0.1
"""The share of a fold's other documents that becomes its dev split."""


def fold_splits(sentences: Sequence[Sentence], folds: int, seed: int) -> list[dict[str, list[Sentence]]]:
    """For each fold, its train/dev/test sentences: test is the fold's documents, dev a share of the
    rest (DEV_FRACTION), drawn with the seed; no document is in two splits of a fold or in two test folds."""
    docs = sorted({s.doc_id for s in sentences})
    if folds < 2:
        raise AdelabelError(f"--folds: cross-validation needs at least 2 folds, got {folds}")
    if folds > len(docs):
        raise AdelabelError(f"--folds {folds}: the corpus has only {len(docs)} documents, fewer than folds")
    rng = random.Random(seed)
    rng.shuffle(docs)
    out = []
    for k in range(folds):
        test = set(docs[k::folds])
        rest = [d for d in docs if d not in test]
        random.Random(seed * 1000 + k).shuffle(rest)
        dev = set(rest[:max(1, round(DEV_FRACTION * len(rest)))])
        if len(dev) >= len(rest):
            raise AdelabelError(f"--folds {folds}: too few documents ({len(docs)}) to leave fold {k + 1} a "
                                "training split")
        split = {"train": [], "dev": [], "test": []}
        for s in sentences:
            split["test" if s.doc_id in test else "dev" if s.doc_id in dev else "train"].append(s)
        out.append(split)
    return out


def _leaves(result: dict, prefix: str = "") -> dict[str, float]:
    """Every score of a result as ``path.to.value`` (precision, recall, F1 and the like). Scores that the
    fold cannot define are left out rather than read as 0: the recall and F1 of a type or class its test
    split holds none of (which seqeval reports, as 0, when the model predicted one), and the precision
    of a class or pair type never predicted either."""
    out = {}
    if not prefix and result.get("positive") in result.get("per_class", {}) and \
            not result["per_class"][result["positive"]].get("support"):
        # The positive class's F1, undefined in a fold whose test split holds none of it (not a 0).
        result = {k: v for k, v in result.items() if k != "f1"}
    if not prefix and "per_class" in result and result.get("confusion"):
        predicted = [sum(column) for column in zip(*result["confusion"])]
        result = {**result, "per_class": {
            name: {k: v for k, v in scores.items()
                   if scores["support"] or (k == "precision" and predicted[result["classes"].index(name)])}
            for name, scores in result["per_class"].items()}}
    for key, value in result.items():
        if isinstance(value, dict):
            if value.get("support") == 0:  # and the precision of what was never predicted either
                undefined = ("recall", "f1", "precision") if value.get("predicted") == 0 else ("recall", "f1")
                value = {k: v for k, v in value.items() if k not in undefined}
            out.update(_leaves(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and \
                key in ("precision", "recall", "f1", "support", "accuracy", "roc_auc", "average_precision", "ece",
                        "brier"):
            out[prefix + key] = float(value)
    return out


def summarise(results: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Mean and (sample) standard deviation of each score over the folds. A score some folds lack (a
    type none of a fold's test documents names, a ROC-AUC undefined on a fold with one class) is
    averaged over the folds that have it, and ``folds`` says how many those are."""
    leaves = [_leaves(r) for r in results]
    keys = list(dict.fromkeys(k for leaf in leaves for k in leaf))
    out = {}
    for key in keys:
        values = [leaf[key] for leaf in leaves if key in leaf]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        out[key] = {"mean": mean, "std": std, **({"folds": len(values)} if len(values) < len(leaves) else {})}
    return out


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cross_validate(config: Config, corpus: str | Path, out: str | Path, folds: int = 10, seed: int = DEFAULT_SEED,
                   format: str = "ade", labels: Sequence[str] = ("DRUG", "AE"), include_negative: bool = True,
                   dim: int = W2V_DIM, w2v_epochs: int = W2V_EPOCHS, strict: bool = False, device: str = "auto",
                   log: Callable[[str], None] | None = print, overlaps: str = "outer",
                   teacher: Sequence[str | Path] = (), encoder_vectors: str | None = None,
                   notes: Sequence[str] = ()) -> dict:
    """Run (or carry on) a cross-validation of ``config`` on ``corpus``; returns what cv.json holds.
    ``teacher``: finished cross-validations of the same folds; each fold's model learns from theirs
    (``train --teacher``). ``encoder_vectors``: as ``prepare``'s, each fold's from its training split.
    ``notes``: the command's warnings, said on stderr once the folds can be made."""
    say = log or (lambda _: None)
    out = Path(out)
    if format == "labelled":
        if config.task != "classify":
            raise AdelabelError("--format labelled: labelled texts have no entities to tag; cross-validate a "
                                "classifier on them with --task classify")
        labels, include_negative = (), False
    if format in ("conll", "brat"):
        labels = ()  # their types come from the data (own_types): --types has no say
    settings = {"config": config.to_dict(), "corpus": str(Path(corpus).resolve()), "format": format,
                "folds": folds, "seed": seed, "labels": list(labels), "include_negative": include_negative,
                "dim": dim, "w2v_epochs": w2v_epochs,
                **({"overlaps": overlaps} if overlaps != "outer" else {}),
                **({"encoder_vectors": encoder_vectors} if encoder_vectors else {}),
                # Readers of these formats changed what comes out (documents and negatives; then CoNLL
                # columns and brat sentences by line; labelled texts apart only in white space; CoNLL
                # -DOCSTART- ids by columns): a run begun by an earlier reader may not be carried on by
                # this one.
                **({"reader": READERS[format]} if format in READERS else {})}
    # The corpus's content, not only its path: folds of an edited corpus would not partition either one.
    settings["corpus_sha256"] = _content_sha256(Path(corpus), format, labels=labels)
    teacher = [Path(t).resolve() for t in teacher]
    if teacher:
        from adelabel.teacher import check_task

        check_task(config.task)
        for root in teacher:
            _check_same_folds(root, settings)
        settings["teacher"] = [str(t) for t in teacher]
    encoder = None
    if encoder_vectors:  # loaded once for every fold; a bad one refused before any work
        from adelabel.encoder_vectors import Encoder

        encoder = Encoder(encoder_vectors)
    settings_path = out / "settings.json"
    afresh: list[str] = []
    if settings_path.is_file():
        before = read_json_object(settings_path)
        if _same_corpus(before.get("corpus_sha256"), Path(corpus), format, settings["corpus_sha256"]):
            before["corpus_sha256"] = settings["corpus_sha256"]
        if before != settings:
            changed = sorted(k for k in settings.keys() | before.keys() if before.get(k) != settings.get(k))
            # A fold with a result, or with an epoch in its checkpoint (a mistyped resume would lose it).
            if any((p / RESULT).is_file() or (checkpoint_dir(p / "model") / "state.pt").is_file()
                   for p in out.glob("fold-*")):
                raise AdelabelError(f"{out}: holds a cross-validation with other settings ("
                                    f"{'; '.join(_differences(before, settings))}); give another --out, "
                                    "or delete it to start afresh")
            afresh = changed
    read: list[str] = []
    skipped: list[str] = []  # the reader's one line on malformed lines, said even under --quiet (as prepare does)
    sentences, numbers, report = read_corpus(corpus, format, labels, include_negative, strict, read.append,
                                             overlaps, skipped.append if log is None else None)
    sentences, labels = own_types(corpus, format, sentences, labels, include_negative)
    splits = fold_splits(sentences, folds, seed)
    if afresh:
        # No fold finished under the folder's settings (the first stopped by an error, say): nothing of
        # them is worth keeping, and a fold begun under them would mix the two. Removed only now, once
        # this run's settings have proved able to make folds (a mistyped --folds loses nothing).
        say(f"{out}: no fold had finished under its settings ({', '.join(afresh)} differ); starting afresh")
        for fold in sorted(out.glob("fold-*")):
            atomic.remove_dir(fold)
    for line in read:  # what the reader skipped or repaired, as prepare says it, once the folds can be made
        say(line)
    for line in [*skipped, *notes]:
        _stderr(line)
    counts = Counter(map(sentence_class, sentences))
    classifier = {"classes": sorted(counts), "positive": positive_class(counts, format)}
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(settings_path, json.dumps(settings, indent=2) + "\n")
    results: list[dict] = []
    durations: list[float] = []
    for k, split in enumerate(splits, start=1):
        fold = out / f"fold-{k:02d}"
        result_path = fold / RESULT
        if result_path.exists() and not result_path.is_file():
            raise InputError(result_path, "is not a file (where the fold's result is written); remove it")
        if result_path.is_file():
            results.append(read_json_object(result_path))
            if why := _fold_result_fault(results[-1], k, config.task):
                raise InputError(result_path, f"corrupt fold result ({why}); delete {fold.name}/ to run the fold "
                                              "again")
            say(f"fold {k}/{folds}: done before (test F1 {results[-1]['test']['f1']:.4f})")
            if _number(results[-1].get("seconds")) and results[-1]["seconds"] > 0:
                durations.append(results[-1]["seconds"])  # so a resumed run estimates its time left at once
            continue
        if (result := _saved_result(fold / "model", k, config.task)) is not None:
            atomic.write_text(result_path, json.dumps(result, indent=2) + "\n")
            results.append(result)
            say(f"fold {k}/{folds}: trained before the run stopped (test F1 {result['test']['f1']:.4f}); its "
                "result read from its model")
            continue
        started = time.perf_counter()
        left = f", about {duration(sum(durations) / len(durations) * (folds - k + 1))} left" if durations else ""
        say(f"fold {k}/{folds}: {len({s.doc_id for s in split['test']}):,} test documents, "
            f"{len(split['test']):,} test sentences{left}")
        resume = checkpoint_dir(fold / "model").is_dir()
        if not resume:
            if format == "labelled":
                drop_unseen_classes(split, numbers, corpus, strict, lambda line: say(f"fold {k}/{folds}: {line}"))
            write_data(fold / "data", split, {"corpus": settings["corpus"], "format": format, "seed": seed,
                                              "labels": list(labels), "include_negative": include_negative,
                                              "overlaps": overlaps, "report": report, "fold": k, "folds": folds,
                                              "classifier": classifier},
                       None, None, dim, seed, w2v_epochs, 200_000, lambda _: None, encoder=encoder)
        fold_log = (lambda line: say(f"  fold {k}/{folds} {line}")) if log is not None else None
        teachers = [root / f"fold-{k:02d}" / "model" for root in teacher]
        metrics = train(config, fold / "data", fold / "model", device=device, log=fold_log, resume=resume,
                        teacher=teachers, warn=lambda line: (log or _stderr)(f"fold {k}/{folds}: {line}"))
        result = {"fold": k, "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
                  "test": metrics["test"], "versions": _trained_under(fold / "model")}
        if not resume:  # a resumed fold's time here is only part of what it took
            result["seconds"] = round(time.perf_counter() - started, 1)
            durations.append(result["seconds"])
        atomic.write_text(result_path, json.dumps(result, indent=2) + "\n")
        results.append(result)
        # The summary so far, after every fold: a long run can be read before it ends.
        _write_summary(out, settings, results, folds)
    if older := other_versions(results):
        (log or _stderr)(f"warning: fold{'s' if len(older) > 1 else ''} {', '.join(map(str, older))} trained under other "
                         "versions (adelabel's code or a package) than this run's: cv.json gives each fold's")
    return _write_summary(out, settings, results, folds)


READERS = {"conll": 5, "brat": 4, "labelled": 2}
"""The version of each format's reader whose documents and sentences a cv run's folds hold."""

SAME_FOLDS = ("corpus", "format", "folds", "seed", "labels", "include_negative", "overlaps", "reader")


CORPUS_FILES = {"ade": (AE_FILE, DOSE_FILE, NEG_FILE)}
"""What a corpus folder's reader reads, by format: a README, notes or an example text beside them
change no fold (a brat folder's: each .ann and the .txt beside it, :func:`_content_sha256`)."""


def _differences(before: dict, now: dict) -> list[str]:
    """What differs between two settings, down to the leaves: "config.train.batch_size 32 -> 16"."""
    # A checksum's digits tell nobody anything.
    return [key if key.endswith("sha256") else f"{key} {json.dumps(old)} -> {json.dumps(new)}"
            for key, old, new in differences(before, now)]


def _same_corpus(recorded: str | None, corpus: Path, format: str, current: str) -> bool:
    """Whether a cross-validation's recorded corpus checksum is this corpus's: absent (a run from before
    it was recorded), today's, or the one runs before today's recipe took over every .rel, .txt and .ann."""
    # DRUG-DOSE.rel was summed whatever the types, though only --types DRUG,AE,DOSE reads it.
    return recorded in (None, current) or any(recorded == _content_sha256(corpus, format, older)
                                              for older in (("*.rel", "*.txt", "*.ann"), ("*.txt", "*.ann"),
                                                            (AE_FILE, DOSE_FILE, NEG_FILE)))


def _content_sha256(corpus: Path, format: str, patterns: Sequence[str] | None = None,
                    labels: Sequence[str] = ()) -> str:
    """One SHA-256 over a corpus file, or over the name and content of each file a corpus folder's
    reader reads (:data:`CORPUS_FILES`; the ADE corpus's DRUG-DOSE.rel only where ``labels`` hold DOSE)."""
    try:
        if corpus.is_file():
            return atomic.sha256(corpus)
        digest = hashlib.sha256()
        if format == "brat" and patterns is None:  # a .txt without its .ann is a note the reader leaves out
            files = {p for ann in corpus.glob("*.ann") if ann.is_file() for p in (ann, ann.with_suffix(".txt"))
                     if p.is_file()}
        else:
            if patterns is None:
                patterns = CORPUS_FILES.get(format, ("*",))
                if format == "ade" and "DOSE" not in labels:
                    patterns = [p for p in patterns if p != DOSE_FILE]
            files = {p for pattern in patterns for p in corpus.glob(pattern) if p.is_file()}
        for path in sorted(files):
            digest.update(f"{path.name}\0{atomic.sha256(path)}\n".encode())
        return digest.hexdigest()
    except OSError as err:
        raise InputError(err.filename or corpus, f"cannot read ({err.strerror or err})") from None


def _saved_result(model: Path, fold: int, task: str) -> dict | None:
    """The result of a fold stopped after its model was saved and before its result was written, read
    from the model's own metrics (those ``train`` returned), or None where it has no whole model. The
    model is this run's: a folder of other settings is refused or cleared above, and a model folder
    appears whole or not at all."""
    if checkpoint_dir(model).is_dir() or not model_dir.is_model_dir(model):
        return None
    model_dir.check_files(model)
    metrics = read_json_object(model / model_dir.METRICS)
    result = {"fold": fold, **{key: metrics.get(key) for key in ("best_epoch", "epochs_run", "test")},
              "versions": _trained_under(model)}
    if why := _fold_result_fault(result, fold, task):
        raise InputError(model / model_dir.METRICS, f"corrupt metrics ({why}); delete {model.parent.name}/ to run "
                                                    "the fold again")
    return result


def _trained_under(model: Path) -> dict | None:
    """The versions a fold's model was trained under (those it started under, where it was resumed under
    others), as its config records them."""
    if not (model / model_dir.CONFIG).is_file():
        return None
    config = read_json_object(model / model_dir.CONFIG)
    found = config.get("versions_at_start") or config.get("versions")
    return found if isinstance(found, dict) else None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_SHARES = frozenset({"precision", "recall", "f1", "accuracy", "roc_auc", "average_precision", "ece", "brier",
                     "threshold"})
_COUNTS = frozenset({"support", "predicted"})


def _fold_result_fault(result: dict, fold: int, task: str) -> str | None:
    """What is wrong with a finished fold's result as read back (an edit, a damaged disk), or None: its
    scores are averaged as they are, so a NaN or a precision of 5 would reach the table unseen."""
    if result.get("fold") != fold:
        return f"fold {result.get('fold')!r}, not {fold}"
    test = result.get("test")
    head = "micro" if task == "tag" else "macro"
    if not isinstance(test, dict) or not isinstance(test.get(head), dict):
        return "no test scores"
    if not all(_number(test[head].get(k)) for k in ("precision", "recall", "f1")) or not _number(test.get("f1")):
        return f"test.{head} lacks a precision, recall or F1"

    def fault(scores: dict, where: str) -> str | None:
        for key, value in scores.items():
            if isinstance(value, dict):
                if found := fault(value, f"{where}{key}."):
                    return found
            elif key in _SHARES and value is not None and not (_number(value) and 0 <= value <= 1):
                return f"{where}{key} is {value!r}, not a number from 0 to 1"
            elif key in _COUNTS and not (_number(value) and value >= 0 and value == int(value)):
                return f"{where}{key} is {value!r}, not a count"
        return None

    return fault(test, "test.")


def fold_key(settings: dict) -> dict:
    """What fixes a cross-validation's folds and their data (``overlaps`` is written only when not the
    default)."""
    return {k: settings.get(k, "outer" if k == "overlaps" else None) for k in SAME_FOLDS}


def _check_same_folds(root: Path, settings: dict) -> None:
    """Refuse a teacher cross-validation whose folds are not these: its fold k may have trained on
    this run's fold-k test documents."""
    path = root / "settings.json"
    if not path.is_file():
        raise InputError(root, "--teacher: not a cv folder (no settings.json)")
    recorded = read_json_object(path)
    if (recorded.get("config") or {}).get("task", "tag") != "tag":
        raise InputError(root, "--teacher: cross-validates a sentence classifier; a teacher is a tagger")
    theirs, ours = fold_key(recorded), fold_key(settings)
    differ = [k for k in SAME_FOLDS if theirs[k] != ours[k]]
    if not _same_corpus(recorded.get("corpus_sha256"), Path(settings["corpus"]), settings["format"],
                        settings["corpus_sha256"]):
        differ.append("corpus content")
    if differ:
        raise InputError(path, f"--teacher: other folds ({', '.join(differ)} differ)")
    unfinished = [k for k in range(1, settings["folds"] + 1) if not (root / f"fold-{k:02d}" / RESULT).is_file()]
    if unfinished:
        raise InputError(root, f"--teacher: fold {unfinished[0]} is unfinished")


def other_versions(results: Sequence[dict]) -> list[int]:
    """The folds trained under other versions than this process's (a run carried on after an upgrade):
    each fold's result says which it was trained under; ``versions`` in cv.json are the summary's."""
    now = versions()
    return [r["fold"] for r in results if isinstance(r.get("versions"), dict) and r["versions"] != now]


def _write_summary(out: Path, settings: dict, results: list[dict], folds: int) -> dict:
    summary = {"settings": settings, "versions": versions(), "complete": len(results) == folds,
               "summary": summarise([r["test"] for r in results]), "folds": results}
    if older := other_versions(results):
        summary["folds_under_other_versions"] = older
    atomic.write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def _over(stat: dict, folds: int) -> str:
    """A row's note when only some folds have its score."""
    return f"  ({stat['folds']} of {folds} folds)" if "folds" in stat else ""


def _row_name(key: str) -> str | None:
    """A row's name from one of its scores' keys (a type's F1 is undefined where no fold holds it, but its
    precision is); read from the end, as a type or class name may hold a dot itself."""
    for score in (".f1", ".precision"):
        if key.endswith(score):
            return key.removesuffix(score)
    return None


def _named(stats: dict, prefix: str) -> list[str]:
    """The names of the rows under ``prefix`` (``prefix``NAME.f1 or .precision), dots in a name kept."""
    return sorted({name[len(prefix):] for name in map(_row_name, stats) if name and name.startswith(prefix)})


def format_summary(summary: dict) -> str:
    """The printed table: mean ± standard deviation of precision, recall and F1 per row."""
    stats = summary["summary"]
    folds = len(summary["folds"])
    rows = [f"{folds} folds by document" + ("" if summary.get("complete", True) else f" (of {summary['settings']['folds']}, so far)")
            + "; mean ± standard deviation over the folds' test splits",
            f"{'':<34}{'precision':>18}{'recall':>18}{'f1':>18}"]

    def row(title: str, prefix: str) -> None:
        if prefix.endswith("relations.") and stats.get(f"{prefix}support", {}).get("mean", 1) == 0:
            rows.append(f"{title:<34}{'n/a (no gold pair)':>18}")
            return
        if f"{prefix}f1" not in stats and f"{prefix}precision" not in stats:
            return
        # Recall and F1 are undefined in a fold that holds none of the row's type: n/a where no fold does.
        cells = "".join(f"{stats[prefix + m]['mean']:>10.4f} ± {stats[prefix + m]['std']:.4f}"
                        if prefix + m in stats else f"{'n/a':>18}" for m in ("precision", "recall", "f1"))
        counts = {m: stats[prefix + m].get("folds", folds) for m in ("precision", "recall", "f1") if prefix + m in stats}
        if len(set(counts.values())) > 1:  # precision is defined in folds where recall and F1 are not
            note = "  (" + ", ".join(f"{m} over {n} of {folds} folds" for m, n in counts.items()) + ")"
        else:
            note = _over(stats.get(prefix + "f1") or stats[prefix + "precision"], folds)
        rows.append(f"{title:<34}{cells}{note}")

    if summary["settings"]["config"]["task"] == "classify":
        per_class = _named(stats, "per_class.")
        for name in per_class:
            row(name, f"per_class.{name}.")
        row("macro", "macro.")
        for key in ("roc_auc", "average_precision", "accuracy", "ece", "brier"):
            if key in stats:
                rows.append(f"{key:<34}{stats[key]['mean']:>10.4f} ± {stats[key]['std']:.4f}{_over(stats[key], folds)}")
        return "\n".join(rows)
    types = sorted({_row_name(k) for k in stats if _row_name(k) and not k.startswith(
        ("annotated_only.", "relations.", "sentences.", "per_class."))} - {"micro", "macro", "weighted"})
    rows.append("all sentences (as `adelabel tag` outputs them):")
    for name in types + ["micro", "macro"]:
        row(f"  {name}", f"{name}.")
    kinds = _named(stats, "relations.types.")
    kinds = kinds if len(kinds) > 1 else []  # one type's row would say the pooled one again

    def relation_rows(prefix: str) -> None:
        row("  relations", prefix)
        for kind in kinds:
            row(f"    {kind}", f"{prefix}types.{kind}.")

    relation_rows("relations.")
    row("  sentence decision", "sentences.")
    rows.append("annotated sentences, gate open (published protocol):")
    for name in types + ["micro", "macro"]:
        row(f"  {name}", f"annotated_only.{name}.")
    relation_rows("annotated_only.relations.")
    return "\n".join(rows)
