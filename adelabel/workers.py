"""``adelabel tag --workers N``: chunks of lines tagged by N processes, written in input order.

Each worker loads the model once and runs torch on its share of the cores (two torch processes that
each take every core slow each other down many times over). At most two chunks per worker are in
flight, so memory stays bounded however long the input is, and results are yielded in the order the
chunks were read.

Not ``concurrent.futures``: its pool reads every worker's results from one shared pipe, so a worker
killed while sending a result leaves half a message there, and the pool's reader waits for the rest
for ever (the parent, and then its exit, hang). Here each worker sends on a pipe of its own whose
other writer is closed, so a death mid-message reads as the end of that pipe.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import threading
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
    from adelabel.tagger import Classifier, Tagger

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


def _sendable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling whole, else its message in an error that does."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        kind = AdelabelError if isinstance(error, AdelabelError) else RuntimeError
        return kind(f"{type(error).__name__}: {error}")


def _serve(load: Callable[..., Callable[[list], list]], args: tuple, tasks: Any, results: Connection) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the workers, and a worker that raised
    # too would print a traceback each. (Inherited ignored already; this covers a parent that could not.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = load(*args)
    except Exception as error:
        results.send(("error", -1, _sendable(error)))
        return
    while (task := _next(tasks)) is not None:
        index, chunk = task
        try:
            reply = ("done", index, process(chunk))
        except Exception as error:
            reply = ("error", index, _sendable(error))
        try:
            results.send(reply)
        except OSError:  # the parent is gone
            return


def _next(tasks: Any) -> tuple[int, list] | None:
    """The next task, or None once told to end or once the parent is gone (killed: nobody else would
    end this process)."""
    parent = multiprocessing.parent_process()
    while True:
        try:
            return tasks.get(timeout=1)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return None


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while workers start, so they are born ignoring it (a Ctrl-C before a worker
    reached its own setting printed a traceback from it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def in_workers(chunks: Iterable[list], workers: int, load: Callable[..., Callable[[list], list]],
               args: tuple) -> Iterator[list]:
    """``load(*args)`` run once in each of ``workers`` processes gives the function each chunk goes
    through there; the results come back in the chunks' order. ``load`` must be importable by name
    (the workers are spawned). A worker's error is raised here as it was raised there; a worker's
    death is an :class:`AdelabelError`."""
    # spawn, not fork: a forked child inherits torch's thread pools in whatever state the parent left them.
    context = multiprocessing.get_context("spawn")
    tasks = context.Queue()  # a put never blocks (a thread feeds the pipe), so a busy worker cannot stall us
    tasks.cancel_join_thread()  # and that thread must not hold up our exit once workers are gone
    processes, pipes = [], []
    finished = False
    try:
        with _sigint_ignored():
            for _ in range(workers):
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(target=_serve, args=(load, args, tasks, writer), daemon=True)
                process.start()
                writer.close()  # the worker's copy is the only writer: its death ends the pipe
                processes.append(process)
                pipes.append(reader)
        source = iter(chunks)
        sent = given = 0
        results: dict[int, list] = {}
        exhausted = False
        while True:
            while not exhausted and sent - given < 2 * workers:
                chunk = next(source, None)
                if chunk is None:
                    exhausted = True
                else:
                    tasks.put((sent, chunk))
                    sent += 1
            if given in results:
                yield results.pop(given)
                given += 1
            elif exhausted and given == sent:
                break
            else:
                _receive(pipes, processes, results)
        finished = True
    finally:
        _stop(tasks, processes, pipes, finished)


def _receive(pipes: list[Connection], processes: list, results: dict[int, list]) -> None:
    """Wait for at least one result into ``results``; raise a worker's error or death."""
    ready = wait([*pipes, *(p.sentinel for p in processes)])
    for pipe, process in zip(pipes, processes):
        # A worker's last message can be in its pipe when its exit is seen: read it first.
        if pipe in ready or (process.sentinel in ready and pipe.poll()):
            try:
                kind, index, value = pipe.recv()
            except (EOFError, OSError):  # it died, maybe half way through a message
                raise AdelabelError(DIED) from None
            if kind == "error":
                raise value
            results[index] = value
        elif process.sentinel in ready:
            raise AdelabelError(DIED)


def _stop(tasks: Any, processes: list, pipes: list[Connection], finished: bool) -> None:
    """Workers told to end once all is done; stopped at once on an error, a Ctrl-C or a caller that
    left early (their work is no longer wanted)."""
    if finished:
        for _ in processes:
            tasks.put(None)
    for process in processes:
        if finished:
            process.join(timeout=30)
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join()
    tasks.close()
    for pipe in pipes:
        pipe.close()
