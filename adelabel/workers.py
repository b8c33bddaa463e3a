"""``adelabel tag --workers N``: chunks of lines tagged by N processes, written in input order.

Each worker loads the model once and runs torch on its share of the cores (two torch processes that
each take every core slow each other down many times over). At most two chunks per worker are in
flight, so memory stays bounded however long the input is, and results are yielded in the order the
chunks were read.

Not ``concurrent.futures``: its pool reads every worker's results from one shared pipe, so a worker
killed while sending a result leaves half a message there, and the pool's reader waits for the rest
for ever (the parent, and then its exit, hang). Here each worker has a pipe of its own each way, and
each pipe one writer and one reader, so the death of either end, even half way through a message,
reads as the end of the pipe at the other.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from adelabel.errors import AdelabelError

DIED = "--workers: a worker process died (killed, or out of memory)"


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_worker(workers: int) -> int:
    """This machine's cores shared out among ``workers`` processes, at least one each."""
    return max(1, cores() // workers)


def _load(kind: str, models: list[Path], device: str, threshold: float | None, precision: str,
          backend: str, threads: int) -> Callable[[list[str]], list]:
    import torch

    torch.set_num_threads(threads)
    from adelabel.errors import EmulatedPrecisionWarning
    from adelabel.tagger import Classifier, Tagger

    warnings.simplefilter("ignore", EmulatedPrecisionWarning)  # the command said it

    if kind == "classify":
        model = Classifier.load(models[0], device=device, threshold=threshold, precision=precision)
        return lambda chunk: list(model.pipe(chunk, batch_size=len(chunk)))
    tagger = Tagger.load(models, device=device, threshold=threshold, precision=precision, backend=backend)
    return lambda chunk: list(tagger.analyze_pipe(chunk, batch_size=len(chunk)))


def tag_in_workers(chunks: Iterable[list[str]], workers: int, kind: str, models: list[Path], device: str,
                   threshold: float | None, precision: str, backend: str = "torch") -> Iterator[list]:
    """Each chunk's results, in input order, from ``workers`` processes."""
    load = (kind, [Path(m) for m in models], device, threshold, precision, backend, threads_per_worker(workers))
    return in_workers(chunks, workers, _load, load)


class _Failed:
    """A chunk whose processing raised ``error`` in a worker: raised when the output reaches it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _RemoteTraceback(Exception):
    """Where a worker's error was raised, as the worker's traceback (its ``__cause__`` here)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _sendable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling whole, else its message in an error that does."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        kind = AdelabelError if isinstance(error, AdelabelError) else RuntimeError
        return kind(f"{type(error).__name__}: {error}")


def _failure(index: int, error: BaseException) -> tuple:
    return ("error", index, _sendable(error), "".join(traceback.format_exception(error)))


def _reply(results: Connection, reply: tuple) -> None:
    try:
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # a result that cannot be pickled is an error, not a death
        data = pickle.dumps(_failure(reply[1], error), protocol=pickle.HIGHEST_PROTOCOL)
    results.send_bytes(data)


def _end_with(parent: Any) -> None:
    """End this worker as soon as its parent is gone (killed: nobody else would), busy or not."""
    parent.join()
    os._exit(1)


def _serve(load: Callable[..., Callable[[list], list]], args: tuple, tasks: Connection,
           results: Connection) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the workers, and a worker that raised
    # too would print a traceback each. (Born ignoring it already where the parent could arrange that.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    try:
        try:
            process = load(*args)
        except Exception as error:
            _reply(results, _failure(-1, error))
            return
        while True:
            try:
                index, chunk = tasks.recv()
            except EOFError:  # no more work
                return
            try:
                reply = ("done", index, process(chunk))
            except Exception as error:
                reply = _failure(index, error)
            _reply(results, reply)
    except OSError:  # the parent closed its ends: it stopped us
        return


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while workers start, so they are born ignoring it (a Ctrl-C before a worker
    reached its own setting printed a traceback from it). Only where the main thread's handler was
    set from Python, so that it can be put back."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Worker:
    """One worker process, its two pipes, and a thread that sends it its chunks (a send to a busy
    worker waits until it reads, and must not stall reading the others' results)."""

    def __init__(self, context: Any, load: Callable, args: tuple) -> None:
        task_reader, self.tasks = context.Pipe(duplex=False)
        self.results, result_writer = context.Pipe(duplex=False)
        self.process = context.Process(target=_serve, args=(load, args, task_reader, result_writer), daemon=True)
        self.process.start()
        task_reader.close()  # so that each pipe has one end here and one there
        result_writer.close()
        self.busy = 0
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send, daemon=True)
        self._sender.start()

    def _send(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self.tasks.send_bytes(data)
            except OSError:  # the worker is gone, which the parent sees by its exit
                return

    def submit(self, index: int, chunk: list) -> None:
        self._outbox.put(pickle.dumps((index, chunk), protocol=pickle.HIGHEST_PROTOCOL))
        self.busy += 1

    def stop(self, finished: bool) -> None:
        """Ended once its work is done (the end of its task pipe tells it); stopped at once otherwise."""
        if not finished:
            self.process.terminate()
        self._outbox.put(None)
        self._sender.join(timeout=30)
        self.tasks.close()
        self.process.join(timeout=30 if finished else 5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.results.close()


_END = object()


AHEAD = 4
"""Chunks a worker may be ahead of the one the output waits for: room for uneven chunks, memory bounded."""


def in_workers(chunks: Iterable[list], workers: int, load: Callable[..., Callable[[list], list]],
               args: tuple) -> Iterator[list]:
    """``load(*args)`` run once in each of up to ``workers`` processes gives the function each chunk
    goes through there; the results come back in the chunks' order. ``load`` must be importable by
    name (the workers are spawned). A worker's error is raised here, in its chunk's place, with the
    worker's traceback as its cause; a worker's death is an :class:`AdelabelError`."""
    source = iter(chunks)
    # No more workers than chunks: each one costs a process and a model's load.
    first = list(itertools.islice(source, workers))
    if not first:
        return
    # spawn, not fork: a forked child inherits torch's thread pools in whatever state the parent left them.
    context = multiprocessing.get_context("spawn")
    pool: list[_Worker] = []
    finished = False
    try:
        with _sigint_ignored():
            pool.extend(_Worker(context, load, args) for _ in range(len(first)))
        source = itertools.chain(first, source)
        sent = given = 0
        results: dict[int, list | _Failed] = {}
        exhausted = False
        while True:
            # At most two chunks a worker in flight, and at most AHEAD a worker sent and not yet given
            # back: results that come back early wait here for a slow one (a line of 75,000 characters),
            # and without the second bound the other workers were fed the whole input meanwhile.
            while not exhausted and sent - given < AHEAD * len(pool) and \
                    (idle := min(pool, key=lambda w: w.busy)).busy < 2:
                chunk = next(source, _END)
                if chunk is _END:
                    exhausted = True
                else:
                    idle.submit(sent, chunk)
                    sent += 1
            if given in results:
                result = results.pop(given)
                if isinstance(result, _Failed):
                    raise result.error
                yield result
                given += 1
            elif exhausted and given == sent:
                break
            else:
                _receive(pool, results)
        finished = True
    finally:
        for worker in pool:
            worker.stop(finished)


def _receive(pool: list[_Worker], results: dict) -> None:
    """Wait for at least one result into ``results``; raise a worker's failure to start, or its death."""
    ready = wait([*(w.results for w in pool), *(w.process.sentinel for w in pool)])
    for worker in pool:
        # A worker's last message can be in its pipe when its exit is seen: read it first.
        if worker.results in ready or (worker.process.sentinel in ready and worker.results.poll()):
            try:
                kind, index, value, *where = worker.results.recv()
            except (EOFError, OSError):  # it died, maybe half way through a message
                raise AdelabelError(DIED) from None
            worker.busy -= 1
            if kind == "error":
                value.__cause__ = _RemoteTraceback(where[0])
                if index < 0:  # it could not start
                    raise value
                value = _Failed(value)
            results[index] = value
        elif worker.process.sentinel in ready:
            raise AdelabelError(DIED)
