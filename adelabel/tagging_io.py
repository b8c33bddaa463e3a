"""``adelabel tag``: stream lines of text through a :class:`Tagger` and write JSONL or CoNLL."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import IO

from adelabel.atomic import atomic_dir, atomic_file, brat_folder, check_output_dir, check_output_file, write_text
from adelabel.inference import RELATION_THRESHOLD
from adelabel.versions import __version__
from adelabel.errors import InputError, OptionError
from adelabel.model_dir import task_of
from adelabel.tagger import Analysis, Classifier, Tagger
from adelabel.text import tokenize
from adelabel.tags import spans_to_tags


def read_text_lines(source: str) -> Iterator[str]:
    """Lines of a UTF-8 file (or stdin for ``-``), without line endings, read lazily."""
    name = "<stdin>" if source == "-" else source
    with ExitStack() as stack:
        if source == "-":
            fh = sys.stdin.buffer
        else:
            path = Path(source)
            if not path.is_file():
                raise InputError(path, "file not found")
            fh = stack.enter_context(path.open("rb"))
        number = 0
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(name, f"not UTF-8 text (byte {err.start} of the line)", number) from None
            yield line.rstrip("\r\n").removeprefix("\ufeff") if number == 1 else line.rstrip("\r\n")
        # An empty file is almost always a mistake (a wrong name, a failed export); empty stdin is a pipe
        # that had nothing to say.
        if source != "-" and number == 0:
            raise InputError(name, "file is empty")


def write_jsonl(out: IO[str], analysis) -> None:
    out.write(json.dumps(analysis.to_dict(), ensure_ascii=False) + "\n")


def write_conll(out: IO[str], analysis: Analysis) -> None:
    """Each sentence of the line as ``token<TAB>tag``, a blank line after it. Comment lines carry the
    line (``# text =``), each sentence's probability of reporting an ADE (``# sentence =``) and the
    relations (``# relation =``, entities numbered in order of the line); a blank input line is a
    ``# text =`` comment and a blank line, so line numbers can be recovered."""
    text = analysis.text
    out.write(f"# text = {text}\n")
    for r in analysis.relations:
        drug, effect = analysis.entities[r.drug], analysis.entities[r.effect]
        out.write(f"# relation = {r.type} {r.drug} {drug.text!r} -> {r.effect} {effect.text!r} {r.score}\n")
    spans = [(e.start, e.end, e.label) for e in analysis.entities]
    if not analysis.sentences:
        out.write("\n")
    for sentence in analysis.sentences:
        s, e = sentence.start, sentence.end
        out.write(f"# sentence = {s}-{e} ade={sentence.ade}\n")
        tokens = [(a + s, b + s) for a, b in tokenize(text[s:e])]
        tags, _ = spans_to_tags(tokens, [sp for sp in spans if s <= sp[0] < e])
        for (a, b), t in zip(tokens, tags):
            out.write(f"{text[a:b]}\t{t}\n")
        out.write("\n")


def write_brat(folder: Path, number: int, analysis: Analysis) -> None:
    """Input line ``number`` as brat standoff: ``NNNNNN.txt`` (the line) and ``NNNNNN.ann`` (a ``T`` line
    per entity, an ``R`` line per relation), the layout annotation tools open."""
    stem = folder / f"{number:06d}"
    stem.with_suffix(".txt").write_text(analysis.text, encoding="utf-8")
    lines = [f"T{i}\t{e.label} {e.start} {e.end}\t{e.text}" for i, e in enumerate(analysis.entities, start=1)]
    lines += [f"R{i}\t{r.type} Arg1:T{r.drug + 1} Arg2:T{r.effect + 1}" for i, r in enumerate(analysis.relations, start=1)]
    stem.with_suffix(".ann").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def check_output(source: str, output: Path | None, fmt: str = "jsonl") -> None:
    """Refuse, before a model is loaded, an output that cannot be written or that is the input."""
    if fmt == "brat":
        if output is None:
            raise OptionError("--format brat writes a folder of .txt/.ann files: give it with --output")
        check_output_dir(output, "--output", brat_folder)
        return
    if output is None:
        return
    check_output_file(output, "--output")
    if source != "-" and output.exists() and Path(source).exists() and os.path.samefile(source, output):
        raise OptionError(f"--output {output}: is the input file {source}; writing it would destroy what is read")


def tag_stream(source: str, model: str | Path | list[Path], fmt: str, output: Path | None, batch_size: int,
               device: str, threshold: float | None = None) -> int:
    """Tag every line of ``source``; returns the number of lines written. An ``output`` file is
    written under a temporary name and renamed when complete, so it never holds a partial result."""
    check_output(source, output, fmt)
    if source != "-" and not Path(source).is_file():
        raise InputError(source, "file not found")
    models = [model] if isinstance(model, (str, Path)) else list(model)
    if any(task_of(m) == "classify" for m in models):
        if len(models) > 1:
            raise OptionError("--model: an ensemble is of taggers; give one classifier")
        model = models[0]
        if fmt != "jsonl":
            raise OptionError(f"--format {fmt}: {model} is a sentence classifier, which writes jsonl "
                              "(one {\"text\", \"label\", \"scores\"} record per input line)")
        tagger = Classifier.load(model, device=device, threshold=threshold)
        process = tagger.pipe
    else:
        tagger = Tagger.load(models, device=device, threshold=threshold)
        process = tagger.analyze_pipe
        model = models[0] if len(models) == 1 else models
    lines = read_text_lines(source)
    count = 0
    meta = provenance(tagger, model)
    with ExitStack() as stack:
        if fmt == "brat":
            folder = stack.enter_context(atomic_dir(output, brat_folder))
            write = lambda analysis: write_brat(folder, count + 1, analysis)  # noqa: E731
        else:
            out = stack.enter_context(atomic_file(output)) if output else sys.stdout
            writer = write_jsonl if fmt == "jsonl" else write_conll
            write = lambda analysis: writer(out, analysis)  # noqa: E731
            if fmt == "conll":
                out.write(f"# model = {json.dumps(meta)}\n")
        while True:
            chunk = list(islice(lines, batch_size))
            if not chunk:
                break
            for analysis in process(chunk, batch_size=len(chunk)):
                write(analysis)
                count += 1
    if output is not None and fmt != "conll":
        # Beside the output, not in it: one record per input line stays exactly that.
        write_text(Path(f"{output}.meta.json"), json.dumps({**meta, "lines": count}, indent=2) + "\n")
    return count


def provenance(tagger: Tagger | Classifier, model: str | Path | list[Path]) -> dict:
    """Which model and thresholds produced an output."""
    if isinstance(tagger, Classifier):
        positive = tagger.model.positive
        return {"model": str(Path(model).resolve()), "arch": tagger.config["arch"], "task": "classify",
                "classes": tagger.classes,
                **({"positive": tagger.classes[positive],
                    "threshold": tagger.threshold if tagger.threshold is not None
                    else round(float(tagger.model.threshold), 4)} if positive is not None else {}),
                "adelabel": __version__}
    gate = tagger.model.gate is not None
    where = str(Path(model).resolve()) if isinstance(model, (str, Path)) else [str(Path(m).resolve()) for m in model]
    return {"model": where, "arch": tagger.config["arch"],
            "sentence_threshold": tagger.threshold if tagger.threshold is not None
            else round(float(tagger.model.gate_threshold), 4) if gate else 0.0,
            "relation_threshold": RELATION_THRESHOLD, "adelabel": __version__}
