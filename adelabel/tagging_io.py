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

from adelabel.atomic import atomic_file, check_output_file
from adelabel.errors import InputError, OptionError
from adelabel.tagger import Tagger
from adelabel.text import split_sentences, tokenize
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


def write_jsonl(out: IO[str], text: str, entities) -> None:
    out.write(json.dumps({"text": text, "entities": [e.to_dict() for e in entities]}, ensure_ascii=False) + "\n")


def write_conll(out: IO[str], text: str, entities) -> None:
    """Each sentence of the line as ``token<TAB>tag``, a blank line after it; a ``# text =`` comment
    first, so an input line with no tokens still leaves a trace and line numbers can be recovered."""
    out.write(f"# text = {text}\n")
    spans = [(e.start, e.end, e.label) for e in entities]
    for s, e in split_sentences(text):
        tokens = [(a + s, b + s) for a, b in tokenize(text[s:e])]
        inside = [sp for sp in spans if s <= sp[0] < e]
        tags, _ = spans_to_tags(tokens, inside)
        for (a, b), t in zip(tokens, tags):
            out.write(f"{text[a:b]}\t{t}\n")
        out.write("\n")


def check_output(source: str, output: Path | None) -> None:
    """Refuse, before a model is loaded, an output that cannot be written or that is the input."""
    if output is None:
        return
    check_output_file(output, "--output")
    if source != "-" and output.exists() and Path(source).exists() and os.path.samefile(source, output):
        raise OptionError(f"--output {output}: is the input file {source}; writing it would destroy what is read")


def tag_stream(source: str, model: str | Path, fmt: str, output: Path | None, batch_size: int,
               device: str, threshold: float | None = None) -> int:
    """Tag every line of ``source``; returns the number of lines written. An ``output`` file is
    written under a temporary name and renamed when complete, so it never holds a partial result."""
    check_output(source, output)
    if source != "-" and not Path(source).is_file():
        raise InputError(source, "file not found")
    tagger = Tagger.load(model, device=device, threshold=threshold)
    writer = write_jsonl if fmt == "jsonl" else write_conll
    lines = read_text_lines(source)
    count = 0
    with ExitStack() as stack:
        out = stack.enter_context(atomic_file(output)) if output else sys.stdout
        while True:
            chunk = list(islice(lines, batch_size))
            if not chunk:
                break
            for text, entities in zip(chunk, tagger.pipe(chunk, batch_size=len(chunk))):
                writer(out, text, entities)
            count += len(chunk)
    return count
