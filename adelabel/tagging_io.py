"""``adelabel tag``: stream lines of text through a :class:`Tagger` and write JSONL or CoNLL."""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import sys
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing
from pathlib import Path
from typing import IO

from adelabel import atomic
from adelabel.atomic import (atomic_dir, atomic_file, brat_folder, check_apart, check_output_dir, check_output_file,
                             is_stream, write_text)
from adelabel.inference import RELATION_THRESHOLD
from adelabel.versions import __version__, code_fingerprint
from adelabel.workers import cores, tag_in_workers
from adelabel.corpus.files import check_file, read_lines
from adelabel.errors import InputError, OptionError
from adelabel.model_dir import task_of
from adelabel.partial import input_identity, keep_records, resumable_file
from adelabel.progress import Progress
from adelabel.tagger import Analysis, Classifier, Tagger, check_backend, chunked
from adelabel.text import LINE_BREAKS, LINE_BREAKS_TO_SPACE, tokenize
from adelabel.tags import spans_to_tags


# What an output record holds; an input record may not bring a field of these names.
WRITTEN = ("entities", "relations", "sentences", "ade", "label", "scores")


def read_records(source: str, warn: Callable[[str], None] | None = None) -> Iterator[tuple[str, dict]]:
    """``--input-format jsonl``: each line a JSON object with a ``text`` string; its other fields (an
    ``id``, a ``pmid``) are carried to the line's output record."""
    name = "<stdin>" if source == "-" else source
    for number, line in read_lines(source, streams=True, warn=warn):
        yield parse_record(name, number, line)


def read_paragraphs(source: str, warn: Callable[[str], None] | None = None) -> Iterator[tuple[str, dict]]:
    """``--input-format paragraphs``: each run of non-blank lines one text, its lines joined by line
    feeds (a narrative or abstract hard-wrapped to a width, whose sentences cross line ends), with the
    number of its first line as the record's ``line``. Blank lines, or lines of white space only, end
    a paragraph and are no text of their own."""
    lines: list[str] = []
    first = 0
    for number, line in read_lines(source, streams=True, warn=warn):
        if line.strip():
            first = first if lines else number
            lines.append(line)
        elif lines:
            yield "\n".join(lines), {"line": first}
            lines = []
    if lines:
        yield "\n".join(lines), {"line": first}
    elif not first and source != "-" and Path(source).is_file():
        # As an empty file is (read_lines): a file of blank lines would give no record, without a word.
        raise InputError(source, "holds only blank lines: no paragraph to tag")


INPUT_FORMATS = ("text", "jsonl", "paragraphs")


def read_texts(source: str, input_format: str, warn: Callable[[str], None] | None = None
               ) -> Iterator[tuple[str, dict]]:
    """Each input text of ``source`` with the fields its output record carries, as ``input_format``
    reads them: a line, a JSONL record or a paragraph."""
    if input_format == "jsonl":
        return read_records(source, warn)
    if input_format == "paragraphs":
        return read_paragraphs(source, warn)
    return ((line, {}) for _, line in read_lines(source, streams=True, warn=warn))


# Python's json reads NaN, Infinity and 1e400 (as inf), which JSON has not: echoed into an output
# record they would make it invalid JSON for every strict reader.
def _not_a_number(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are unique: of two "text" fields one would be tagged and the other lost."""
    record = dict(pairs)
    if len(record) < len(pairs):
        twice = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise ValueError(f"the key {twice!r} appears twice")
    return record


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


def parse_record(name: str, number: int, line: str) -> tuple[str, dict]:
    """Line ``number`` of ``name`` as (text, the record's other fields), or an error naming the line."""
    if not line.strip():  # a record of no text, as a blank line of text input: a line for a line
        return "", {}
    try:
        record = json.loads(line, parse_constant=_not_a_number, parse_float=_finite, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        # Some of json's messages end in "at" already ("Invalid control character at").
        raise InputError(name, f"not a JSON object ({err.msg.removesuffix(' at')} at column {err.colno})",
                         number) from None
    except (ValueError, RecursionError) as err:  # a number JSON has not; an integer of thousands of digits; nesting
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err).split(";")[0]
        raise InputError(name, f"not a JSON object adelabel can read ({reason})", number) from None
    if "\\ud" in line.lower():
        # A valid UTF-8 line can still escape half of a UTF-16 pair, which no output could encode.
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(name, "a \\u escape names half of a surrogate pair, not a character", number) from None
    if not isinstance(record, dict):
        raise InputError(name, f"expected a JSON object with a \"text\" field, got {_json_kind(record)}", number)
    missing = object()
    text = record.pop("text", missing)
    if not isinstance(text, str):
        raise InputError(name, "no \"text\" string in the record" if text is missing
                         else f"\"text\" is {_json_kind(text)}, not a string", number)
    clash = [k for k in WRITTEN if k in record]
    if clash:
        raise InputError(name, f"field {clash[0]!r} is one adelabel writes; rename it in the input", number)
    return text, record


def _json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's words."""
    if isinstance(value, bool):
        return "true or false"
    return {int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}.get(
        type(value), "null")


def model_kind(models: Sequence[str | Path]) -> str:
    """What the model folders hold, "tag" or "classify"; several are an ensemble, which is of taggers."""
    kind = "classify" if any(task_of(m) == "classify" for m in models) else "tag"
    if kind == "classify" and len(models) > 1:
        raise OptionError("--model: an ensemble is of taggers; give one classifier")
    return kind


def check_input_options(input_format: str, workers: int, cluster: bool = False) -> None:
    """``--input-format`` and ``--workers``, as every way of tagging takes them; ``cluster``: the
    workers are Ray's, on a cluster RAY_ADDRESS may name, not processes of this machine."""
    if input_format not in INPUT_FORMATS:
        raise OptionError(f"--input-format: expected text, jsonl or paragraphs, got {input_format!r}")
    if cluster and input_format == "paragraphs":
        raise OptionError("--input-format paragraphs: --ray reads one text per line; tag paragraphs without "
                          "--ray, or write them as JSONL records (--input-format jsonl)")
    if not isinstance(workers, int) or workers < 1:
        raise OptionError(f"--workers: expected a whole number of at least 1, got {workers!r}")
    # On this machine (not a Ray cluster RAY_ADDRESS names), a process more than its cores only slows the
    # others, and each holds a model and chunks in flight: 100,000 of them exhausted memory.
    if workers > cores() and not (cluster and os.environ.get("RAY_ADDRESS")):
        raise OptionError(f"--workers {workers}: more than this machine's {cores()} core(s); processes past one "
                          "per core slow each other down")


# JSON escapes the control characters that end a line (\n, \r, \x0b, ...) and leaves the others
# (U+0085, U+2028, U+2029) as they are, where a line-based reader would cut a record or a comment in
# two: written escaped, as the same characters.
_JSON_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in LINE_BREAKS if ord(c) >= 0x20})


def json_line(record: dict | str) -> str:
    """``record`` as one line of JSON, whatever line-based reader splits it."""
    return json.dumps(record, ensure_ascii=False).translate(_JSON_LINE_BREAKS)


def write_jsonl(out: IO[str], analysis, fields: dict) -> None:
    out.write(json_line({**fields, **analysis.to_dict()}) + "\n")


# A text from JSONL input may hold line breaks, which would end the ``# text =`` comment early: each is
# written as a space (LINE_BREAKS_TO_SPACE), which keeps every offset of the line (breaks are white
# space, never in a token).
def write_conll(out: IO[str], analysis: Analysis, fields: dict) -> None:
    """Each sentence of the line as ``token<TAB>tag``, a blank line after it. Comment lines carry the
    line (``# text =``), each sentence's probability of reporting an ADE (``# sentence =``) and the
    relations (``# relation =``, entities numbered in order of the line, their texts as JSON strings) and, for JSONL input, the
    record's other fields (``# fields =``); a blank input line is a
    ``# text =`` comment and a blank line, so line numbers can be recovered."""
    text = analysis.text
    out.write(f"# text = {text.translate(LINE_BREAKS_TO_SPACE)}\n")
    if fields:
        out.write(f"# fields = {json_line(fields)}\n")
    for r in analysis.relations:
        drug, effect = analysis.entities[r.drug], analysis.entities[r.effect]
        # Entity texts as JSON strings, which any language reads back (a line break escaped, so the
        # comment stays one line; the rest as written).
        out.write(f"# relation = {r.type} {r.drug} {json_line(drug.text)} -> {r.effect} {json_line(effect.text)} "
                  f"{r.score}\n")
    spans = [(e.start, e.end, e.label) for e in analysis.entities]
    starts = [sp[0] for sp in spans]  # in order of the text: a sentence's entities are a slice
    if not analysis.sentences:
        out.write("\n")
    for sentence in analysis.sentences:
        s, e = sentence.start, sentence.end
        out.write(f"# sentence = {s}-{e} ade={sentence.ade} reported={'yes' if sentence.reported else 'no'}\n")
        tokens = [(a + s, b + s) for a, b in tokenize(text[s:e])]
        tags, _ = spans_to_tags(tokens, spans[bisect_left(starts, s):bisect_left(starts, e)])
        for (a, b), t in zip(tokens, tags):
            out.write(f"{text[a:b]}\t{t}\n")
        out.write("\n")


_UNBROKEN = re.compile(f"[^{re.escape(LINE_BREAKS)}]+")


def brat_fragments(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The span ``start``-``end`` of ``text`` as brat holds a mention: one ``(start, end)`` for each piece
    between line breaks, trimmed of white space. brat checks a ``T`` line's text against its pieces joined
    by spaces, and its editor marks a mention across a line end so; one span with a space where the
    text has a line break is refused there."""
    pieces = []
    for m in _UNBROKEN.finditer(text, start, end):
        a = m.start() + len(m.group()) - len(m.group().lstrip())
        b = m.end() - (len(m.group()) - len(m.group().rstrip()))
        if b > a:
            pieces.append((a, b))
    return pieces


def _brat_entity(i: int, text: str, label: str, start: int, end: int) -> str:
    pieces = brat_fragments(text, start, end)
    return f"T{i}\t{label} {';'.join(f'{a} {b}' for a, b in pieces)}\t{' '.join(text[a:b] for a, b in pieces)}"


def write_brat(folder: Path, number: int, analysis: Analysis) -> None:
    """Input line ``number`` as brat standoff: ``NNNNNN.txt`` (the line) and ``NNNNNN.ann`` (a ``T`` line
    per entity, an ``R`` line per relation), the layout annotation tools open."""
    stem = folder / f"{number:0{atomic.BRAT_DIGITS}d}"
    stem.with_suffix(".txt").write_text(analysis.text, encoding="utf-8")
    lines = [_brat_entity(i, analysis.text, e.label, e.start, e.end) for i, e in enumerate(analysis.entities, start=1)]
    lines += [f"R{i}\t{r.type} Arg1:T{r.drug + 1} Arg2:T{r.effect + 1}" for i, r in enumerate(analysis.relations, start=1)]
    stem.with_suffix(".ann").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def widen_brat_names(folder: Path, count: int) -> None:
    """Past 999,999 lines the names grow a digit, so ``1000000`` would sort before ``999999``: give every
    name the width of the last, so that name order is input order whatever reads the folder."""
    digits, width = atomic.BRAT_DIGITS, len(str(count))
    if width <= digits:
        return
    for number in range(1, 10 ** (width - 1)):
        for suffix in (".txt", ".ann"):
            (folder / f"{number:0{digits}d}{suffix}").rename(folder / f"{number:0{width}d}{suffix}")


def check_output(source: str, output: Path | None, fmt: str = "jsonl", models: Sequence[str | Path] = ()) -> None:
    """Refuse, before a model is loaded, an output that cannot be written or that is (or would
    overwrite) the input or a model folder's file."""
    if fmt == "brat":
        if output is None:
            raise OptionError("--format brat writes a folder of .txt/.ann files, not standard output: "
                              "name the folder with --output")
        check_output_dir(output, "--output", brat_folder)
        check_apart(output, "--output", [source, *models])
        _check_sidecar(output, source, models)
        return
    if output is None:
        return
    check_output_file(output, "--output")
    if source != "-" and output.exists() and Path(source).exists() and os.path.samefile(source, output):
        raise OptionError(f"--output {output}: is the input file {source}; writing it would destroy what is read")
    check_apart(output, "--output", [source, *models])
    if not is_stream(output):  # every format: a conll or html output removes a stale sidecar
        _check_sidecar(output, source, models)


def _sidecar(output: Path) -> Path:
    """The file jsonl and brat outputs get beside them, not in them: one record per input line stays
    exactly that."""
    return Path(f"{output}.meta.json")


def _check_sidecar(output: Path, source: str, models: Sequence[str | Path]) -> None:
    """The sidecar of ``output`` (:func:`_sidecar`), checked as the output is."""
    check_output_file(_sidecar(output), "--output")
    check_apart(_sidecar(output), "--output", [source, *models])


def drop_sidecar(output: Path | None) -> None:
    """Remove the sidecar of an earlier run just before ``output`` is renamed into place. The two files
    cannot be renamed as one: this order means a kill between them leaves a new output without a
    sidecar (until the next run), never one beside the old output's provenance and count."""
    if output is not None and not is_stream(output) and _sidecar(output).is_file():
        _sidecar(output).unlink()


def write_sidecar(output: Path | None, meta: dict, count: int) -> None:
    """``meta`` and the number of records written, beside an output file (not beside a pipe or device,
    nor for standard output)."""
    if output is not None and not is_stream(output):
        write_text(_sidecar(output), json.dumps({**meta, "lines": count}, indent=2) + "\n")


def tag_stream(source: str, model: str | Path | list[Path], fmt: str, output: Path | None, batch_size: int,
               device: str, threshold: float | None = None, precision: str = "fp32", input_format: str = "text",
               workers: int = 1, backend: str = "torch", quiet: bool = True, resume: bool = False,
               note: str | None = None) -> int:
    """Tag every line of ``source`` (text, or JSONL records with a ``text`` field); returns the number of
    lines written. An ``output`` file is written under a temporary name and renamed when complete, so
    it never holds a partial result. ``workers`` > 1 tags in that many processes, in input order.
    ``resume``: carry on the JSONL ``output`` a killed run left partial (adelabel/partial.py). ``note``:
    a line for stderr once the options, the model and the input's first chunk are read (which model the
    command chose), so that a bad one stays a one-line error."""
    check_input_options(input_format, workers)
    from_file = source != "-" and not is_stream(Path(source))
    resumable = fmt == "jsonl" and output is not None and from_file and not is_stream(output)
    if resume and not resumable:
        raise OptionError("--resume: carries on jsonl written to a file (--output FILE) from an input file, "
                          + ("not --format " + fmt if fmt != "jsonl" else "not standard input or output, a pipe "
                             "or a device"))
    if input_format == "jsonl" and fmt == "brat":
        raise OptionError("--format brat: a .txt/.ann pair holds no record fields; tag JSONL input to jsonl or conll")
    models = [model] if isinstance(model, (str, Path)) else list(model)
    check_output(source, output, fmt, models)
    if source != "-":
        check_file(source, streams=True)  # a named pipe, or a shell's <(...): read once, as stdin
    kind = model_kind(models)
    check_backend(backend)  # the value first: a misspelt one is not "onnx" to a classifier
    if kind == "classify":
        if backend != "torch":
            raise OptionError("--backend onnx: runs the recurrent taggers; this is a sentence classifier")
        if fmt != "jsonl":
            raise OptionError(f"--format {fmt}: {models[0]} is a sentence classifier, which writes jsonl "
                              "(one {\"text\", \"label\", \"scores\"} record per input line)")
        tagger = Classifier.load(models[0], device=device, threshold=threshold, precision=precision)
        process = tagger.pipe
    else:
        tagger = Tagger.load(models, device=device, threshold=threshold, precision=precision, backend=backend)
        process = tagger.analyze_pipe
    meta = provenance(tagger, models[0] if len(models) == 1 else models)
    warn = lambda message: print(f"adelabel: warning: {message}", file=sys.stderr, flush=True)  # noqa: E731
    records = read_texts(source, input_format, warn)
    fields: deque[list[dict]] = deque()  # each chunk's input fields, until its results are written

    def texts() -> Iterator[list[str]]:
        said = not note
        for chunk in chunked(records, batch_size, lambda record: len(record[0])):
            if not said:
                print(note, file=sys.stderr, flush=True)
                said = True
            fields.append([f for _, f in chunk])
            yield [t for t, _ in chunk]

    count = 0
    size = Path(source).stat().st_size if from_file else None
    with ExitStack() as stack:
        skipped = 0
        if resumable:
            out, count = stack.enter_context(resumable_file(
                output, {**input_identity(source, input_format), "provenance": meta}, resume))
            write = lambda analysis, extra: write_jsonl(out, analysis, extra)  # noqa: E731
            if count:
                # Back to the start of the chunk the kill cut into: the rest is tagged in the chunks an
                # uninterrupted run made, and so comes out byte for byte as that run wrote it (a chunk
                # is sorted and batched as a whole, and a batch's makeup moves scores in the last digits).
                start, skipped, records = _skip_to_chunk(records, count, batch_size, source, output)
                count = keep_records(out, Path(out.name), start)
        elif fmt == "brat":
            folder = stack.enter_context(atomic_dir(output, brat_folder))
            write = lambda analysis, _: write_brat(folder, count + 1, analysis)  # noqa: E731
        else:
            out = stack.enter_context(atomic_file(output)) if output else sys.stdout
            if fmt == "html":
                from adelabel.html_view import HtmlWriter

                page = HtmlWriter(out, meta, unit="paragraph" if input_format == "paragraphs" else "line")
                write = page.write
            else:
                writer = write_jsonl if fmt == "jsonl" else write_conll
                write = lambda analysis, extra: writer(out, analysis, extra)  # noqa: E731
            if fmt == "conll":
                out.write(f"# model = {json.dumps(meta)}\n")
        bar = stack.enter_context(Progress(size, "tagging", "B", quiet=quiet or not size, scale=True,
                                           initial=min(skipped, size or 0)))
        if workers == 1:
            results: Iterator[list] = (list(process(chunk, batch_size=len(chunk))) for chunk in texts())
        else:
            del tagger, process  # the workers load their own
            results = tag_in_workers(texts(), workers, kind, models, device, threshold, precision, backend)
        # Closed on the way out of an error too, not whenever the traceback lets go of it: the
        # workers stop before the partial output is set aside.
        stack.enter_context(closing(results))
        for chunk in results:
            for analysis, extra in zip(chunk, fields.popleft()):
                write(analysis, extra)
                count += 1
            # Characters stand in for bytes: exact for ASCII, close enough for a bar otherwise.
            bar.update(min(sum(len(a.text) + 1 for a in chunk), (size or 0) - bar.done))
        # Non-ASCII text, a byte-order mark or CRLF endings leave the count short of the size.
        bar.update(max(0, (size or 0) - bar.done))
        if fmt == "html":
            page.close()
        if fmt == "brat":
            widen_brat_names(folder, count)
        drop_sidecar(output)  # conll and html carry it in their first lines: one left from jsonl is stale
    if fmt not in ("conll", "html"):  # which carry it in their first lines
        write_sidecar(output, meta, count)
    return count


def _skip_to_chunk(records: Iterator[tuple[str, dict]], count: int, batch_size: int, source: str,
                   output: Path) -> tuple[int, int, Iterator[tuple[str, dict]]]:
    """Read past the whole chunks (as ``tag`` makes them from the input's start) before record ``count``
    (from 0) of a resumed output: the number of records they hold, their characters (for the bar), and
    the records from that chunk's start on."""
    start = length = 0
    for chunk in chunked(records, batch_size, lambda record: len(record[0])):
        if start + len(chunk) > count:
            return start, length, itertools.chain(chunk, records)
        start += len(chunk)
        length += sum(len(text) + 1 for text, _ in chunk)
    if start < count:
        raise InputError(source, f"has {start:,} lines, fewer than the {count:,} records the partial output "
                                 f"of {output} holds: it changed since")
    return start, length, records


def provenance(tagger: Tagger | Classifier, model: str | Path | list[Path]) -> dict:
    """Which model (folder and weights' checksum), thresholds, precision and backend produced an
    output. The thresholds are those the decisions use, unrounded, so giving one back as
    ``--threshold`` repeats the run."""
    one = isinstance(model, (str, Path))
    where = str(Path(model).resolve()) if one else [str(Path(m).resolve()) for m in model]
    weights = _weights(model) if one else [_weights(m) for m in model]
    if isinstance(tagger, Classifier):
        positive = tagger.model.positive
        return {"model": where, "weights": weights, "arch": tagger.config["arch"], "task": "classify",
                "classes": tagger.classes,
                **({"positive": tagger.classes[positive], "threshold": tagger.decision_threshold}
                   if positive is not None else {}),
                "precision": tagger.precision, "adelabel": __version__, "adelabel_code": code_fingerprint()}
    gate = tagger.model.gate is not None
    return {"model": where, "weights": weights, "arch": tagger.config["arch"],
            "sentence_threshold": tagger.decision_threshold if gate else 0.0,
            "relation_threshold": RELATION_THRESHOLD, "precision": tagger.precision, "backend": tagger.backend,
            "adelabel": __version__, "adelabel_code": code_fingerprint()}


def _weights(folder: str | Path) -> str | None:
    """The SHA-256 of a model folder's weights, as its manifest lists them (proved when it was loaded)."""
    from adelabel import model_dir

    try:
        manifest = json.loads((Path(folder) / model_dir.MANIFEST).read_text(encoding="utf-8"))
        return manifest["files"][model_dir.WEIGHTS]
    except (OSError, ValueError, KeyError, TypeError):
        return None
