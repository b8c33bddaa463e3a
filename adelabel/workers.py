"""``adelabel tag --workers N``: chunks of lines tagged by N processes, written in input order.

Each worker loads the model once and runs torch on its share of the cores (two torch processes that
each take every core slow each other down many times over). At most two chunks per worker are in
flight, so memory stays bounded however long the input is, and results are yielded in the order the
chunks were read.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from adelabel.errors import AdelabelError

_PROCESS: Callable[[list[str]], list] | None = None


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_worker(workers: int) -> int:
    """This machine's cores shared out among ``workers`` processes, at least one each."""
    return max(1, cores() // workers)


def _start(kind: str, models: list[Path], device: str, threshold: float | None, precision: str,
           backend: str, threads: int) -> None:
    global _PROCESS
    # Ctrl-C reaches the whole process group: the parent stops the pool, and a worker that raised too
    # would print a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    from adelabel.tagger import Classifier, Tagger

    if kind == "classify":
        model = Classifier.load(models[0], device=device, threshold=threshold, precision=precision)
        _PROCESS = lambda chunk: list(model.pipe(chunk, batch_size=len(chunk)))  # noqa: E731
    else:
        model = Tagger.load(models, device=device, threshold=threshold, precision=precision, backend=backend)
        _PROCESS = lambda chunk: list(model.analyze_pipe(chunk, batch_size=len(chunk)))  # noqa: E731


def _work(chunk: list[str]) -> list:
    assert _PROCESS is not None, "worker not started"
    return _PROCESS(chunk)


def tag_in_workers(chunks: Iterable[list[str]], workers: int, kind: str, models: list[Path], device: str,
                   threshold: float | None, precision: str, backend: str = "torch") -> Iterator[list]:
    """Each chunk's results, in input order, from ``workers`` processes."""
    # spawn, not fork: a forked child inherits torch's thread pools in whatever state the parent left them.
    context = multiprocessing.get_context("spawn")
    init = (kind, [Path(m) for m in models], device, threshold, precision, backend, threads_per_worker(workers))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=init) as pool:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_work, chunk))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise AdelabelError("--workers: a worker process died (killed, or out of memory)") from None
