"""Tagging on a Ray cluster: Ray Data reads the input, runs :class:`RayTagger` on each batch in
workers that load the model once, and writes JSONL, so corpus-scale tagging runs on an existing
engine (scheduling, retries, spilling, many machines) rather than a scheduler of our own.

In a pipeline of one's own::

    import ray
    from adelabel.ray_tagging import RayTagger

    ds = ray.data.read_json("s3://bucket/abstracts/")          # records with a "text" field
    ds = ds.map_batches(RayTagger, fn_constructor_kwargs={"model": "/models/bilstm"},
                        concurrency=64, batch_size=1024)
    ds.write_json("s3://bucket/tagged/")

Each output row is the input row with the fields of ``adelabel tag``'s JSONL record added
(``entities``, ``relations``, ``sentences``, ``ade``; a classifier's ``label`` and ``scores``).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr
from pathlib import Path

from adelabel.errors import AdelabelError, InputError, OptionError
from adelabel.text import LINE_BREAKS


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise OptionError("--ray: needs Ray Data: pip install 'adelabel[ray]'") from None
    return ray


class RayTagger:
    """A callable class for ``Dataset.map_batches``: the model is loaded once per worker, each batch
    (a dict of columns with a ``text`` column) comes back with the result columns added."""

    def __init__(self, model: str | Path | list, device: str = "cpu", threshold: float | None = None,
                 precision: str = "fp32", threads: int = 1) -> None:
        import torch

        from adelabel.errors import EmulatedPrecisionWarning
        from adelabel.tagger import Classifier, Tagger
        from adelabel.tagging_io import model_kind

        torch.set_num_threads(threads)  # workers share a machine's cores; each takes its share
        warnings.simplefilter("ignore", EmulatedPrecisionWarning)  # `tag --ray` said it, where the run began
        models = [model] if isinstance(model, (str, Path)) else list(model)
        if model_kind(models) == "classify":
            classifier = Classifier.load(models[0], device=device, threshold=threshold, precision=precision)
            self._process = lambda texts: classifier._classify(texts, classifier.threshold)
        else:
            tagger = Tagger.load(models, device=device, threshold=threshold, precision=precision)
            self._process = lambda texts: tagger._analyze(texts, tagger.threshold)

    def __call__(self, batch: dict) -> dict:
        if "text" not in batch:
            raise AdelabelError(f"RayTagger: a batch needs a \"text\" column; it has {sorted(batch)}")
        # As `tag` refuses such records: a result column would overwrite the input's, and a missing
        # value (None, or pandas' NaN) or a number would be tagged as its printed form ("nan").
        from adelabel.tagging_io import WRITTEN

        clash = [k for k in WRITTEN if k in batch]
        if clash:
            raise AdelabelError(f"RayTagger: the column {clash[0]!r} is one adelabel writes; rename it in the input")
        texts = list(batch["text"])
        odd = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if odd is not None:
            raise AdelabelError(f"RayTagger: row {odd} of a batch: \"text\" is {texts[odd]!r} "
                                f"({type(texts[odd]).__name__}), not a string")
        records = [r.to_dict() for r in self._process(texts)]
        out = dict(batch)
        for key in records[0] if records else ():
            if key != "text":
                out[key] = [r[key] for r in records]
        return out


class _LineTagger(RayTagger):
    """``tag --ray``'s worker: raw input lines in, our JSONL lines out (a record's own fields, of
    whatever JSON type, pass through untouched; tabular readers would retype them)."""

    def __init__(self, jsonl: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.jsonl = jsonl

    def __call__(self, batch: dict) -> dict:
        from adelabel.tagging_io import json_line, parse_record

        lines = [str(line) for line in batch["text"]]
        # Checked line by line before the workers started; read here as tag reads them (a blank line
        # is a record of no text).
        records = [parse_record("input", 0, line) for line in lines] if self.jsonl else [(t, {}) for t in lines]
        texts, fields = [t for t, _ in records], [f for _, f in records]

        return {"line": [json_line({**f, **r.to_dict()}) for f, r in zip(fields, self._process(texts))]}


def _ours(err: BaseException) -> AdelabelError | None:
    """The one-line error a worker met (a model it could not load, say), out of Ray's wrapping of it:
    a task's error carries the worker's as ``cause`` (and is made an instance of its class too, with
    Ray's traceback for its message, so the cause is looked at first)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        cause = getattr(err, "cause", None)
        if isinstance(cause, BaseException):
            err = cause
        elif isinstance(err, AdelabelError):
            return err
        else:
            err = err.__cause__
    return None


SPLITS_LINES = frozenset(LINE_BREAKS) - {"\n"}
"""Where Ray's read_text ends a line besides "\n"."""


REACH_SECONDS = 10
"""How long --ray waits to reach the cluster RAY_ADDRESS names before saying it cannot."""


def _check_reachable(address: str) -> None:
    """An :class:`AdelabelError` where RAY_ADDRESS names a host and port nothing answers on: Ray's driver
    retries such an address without end (silent under --quiet). "auto" and "local" are Ray's to judge."""
    import socket

    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        return
    if not 0 < int(port) < 65536:  # the system would take it modulo 65536, and name another port's refusal
        raise AdelabelError(f"--ray: RAY_ADDRESS={address} names port {port}, which no port is (1 to 65535)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS).close()
    except OSError as err:
        raise AdelabelError(f"--ray: cannot reach the cluster RAY_ADDRESS={address} names "
                            f"({err.strerror or err or 'no answer'}{' in ' + str(REACH_SECONDS) + ' s' if isinstance(err, TimeoutError) else ''})") from None


@contextmanager
def _stderr_silenced(quiet: bool) -> Iterator[None]:
    """Standard error sent to nowhere while the block runs (when ``quiet``), at the descriptor too, so
    that what Ray's C++ core writes there is silenced; an error is reported after it is restored."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved, nowhere = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(nowhere, 2)
    try:
        with open(os.devnull, "w") as sink, redirect_stderr(sink):  # and Python's, wherever sys.stderr points
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(nowhere)


def tag_with_ray(source: str, model: list[Path], output: Path | None, input_format: str, batch_size: int,
                 workers: int, device: str, threshold: float | None, precision: str, quiet: bool = False,
                 note: str | None = None) -> int:
    """``adelabel tag --ray``: the lines of ``source`` tagged by ``workers`` Ray actors, written as
    ``tag`` writes them (one JSONL record per input line, in input order) to ``output`` or stdout.
    Returns the number of records written. ``note``: a line for stderr once the model and the input
    are checked."""
    from adelabel.atomic import atomic_file
    from adelabel.corpus.files import read_lines
    from adelabel.tagger import Classifier, Tagger
    from adelabel.tagging_io import (check_input_options, check_output, drop_sidecar, model_kind, parse_record,
                                     provenance, write_sidecar)

    ray = _ray()
    check_input_options(input_format, workers, cluster=True)
    check_output(source, output, "jsonl", model)
    kind = model_kind(model)
    if source == "-" or not Path(source).is_file():
        raise OptionError(f"{source}: --ray reads a file (not stdin or a folder)")
    # A bad model, device or precision is refused before the input is read (which may be long), and bad
    # input here, naming the file and line, before any worker starts.
    tagger = (Classifier if kind == "classify" else Tagger).load(
        model if len(model) > 1 else model[0], device=device, threshold=threshold, precision=precision)
    meta = provenance(tagger, model[0] if len(model) == 1 else model)
    del tagger  # the workers load their own
    with Path(source).open("rb") as fh:  # beside read_lines, which strips every CR at a line's end
        if fh.read(3) == b"\xef\xbb\xbf":
            raise InputError(source, "begins with a byte-order mark, which Ray's reader keeps in the line "
                                     "(tag it without --ray)", 1)
        fh.seek(0)
        for (number, line), raw in zip(read_lines(source), fh):
            odd = next((c for c in line if c in SPLITS_LINES), None)
            if odd is None and raw.removesuffix(b"\n").removesuffix(b"\r").endswith(b"\r"):
                odd = "\r"  # "\r\r\n", a line ending converted twice: Ray's reader sees an empty line more
            if odd is not None:
                raise InputError(source, f"holds U+{ord(odd):04X}, where Ray's reader would split or misread the "
                                         "line (tag it without --ray)", number)
            if input_format == "jsonl":
                parse_record(source, number, line)
    if note:
        print(note, file=sys.stderr, flush=True)
    _check_reachable(os.environ.get("RAY_ADDRESS", ""))
    with _stderr_silenced(quiet):  # Ray's own log lines and C++ warnings, which --quiet asks to be spared
        # Joins the cluster RAY_ADDRESS names; else starts one on this machine (not one a `ray start`
        # left running, which Ray would join), with a CPU slot for the read tasks beside the workers'
        # (which would otherwise wait for each other).
        local = {} if os.environ.get("RAY_ADDRESS") else {"address": "local", "num_cpus": workers + 1}
        ours = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     **local)
        except (ConnectionError, ValueError, RuntimeError) as err:
            where = f"the cluster RAY_ADDRESS={os.environ['RAY_ADDRESS']} names" if not local else "a local one"
            reason = " ".join(str(err).split())
            raise AdelabelError(f"--ray: cannot start or join Ray ({where}): {reason}") from None
        if callable(ours) and threading.current_thread() is threading.main_thread():
            # Ray's driver exits with status 15 on TERM; the command line's handler unwinds it like Ctrl-C
            # (status 143, as without --ray), removing the unfinished output on the way.
            signal.signal(signal.SIGTERM, ours)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # output rows in input order
        context.enable_progress_bars = False
        if hasattr(context, "raise_original_map_exception"):  # a worker's own error, not Ray Data's wrapping
            context.raise_original_map_exception = True
        dataset = ray.data.read_text(str(Path(source).resolve()), drop_empty_lines=False)
        tagged = dataset.map_batches(
            # Absolute: a cluster's workers run in the folder its `ray start` ran in, not this one.
            _LineTagger, fn_constructor_kwargs={"jsonl": input_format == "jsonl",
                                                "model": [str(Path(m).resolve()) for m in model],
                                                "device": device, "threshold": threshold, "precision": precision},
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1, batch_size=batch_size, batch_format="numpy")
        count = 0
        with atomic_file(output) if output is not None else nullcontext(sys.stdout) as out:
            try:
                for batch in tagged.iter_batches(batch_size=None, batch_format="numpy"):
                    for line in batch["line"]:
                        out.write(line + "\n")
                        count += 1
            except ray.exceptions.RayError as err:
                raise _ours(err) or err
            drop_sidecar(output)
    write_sidecar(output, meta, count)  # as plain `tag` writes it
    return count
