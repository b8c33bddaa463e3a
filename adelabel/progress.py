"""Progress of long work, on stderr: a tqdm bar (rate and time left) when stderr is a terminal, a
plain line at every tenth of the work otherwise (logs and pipes get no carriage returns), nothing
when quiet.

tqdm rather than rich: one small pure-Python dependency (transformers, optuna and gensim's users
have it already) whose bar is a single line that never takes over the terminal, so the log lines
adelabel prints around it stay readable.
"""
from __future__ import annotations

import math
import sys
import time


class Progress:
    def __init__(self, total: int | None, what: str, unit: str = "it", quiet: bool = False,
                 scale: bool = False, initial: int = 0) -> None:
        """``initial``: work done before (a resumed run's), counted as done but not in the rate."""
        self.total, self.what, self.unit, self.done, self.initial = total, what, unit, initial, initial
        self.scale = scale
        self.quiet, self.started, self.next_line = quiet, time.perf_counter(), 0.1
        self._pass_done()  # a resumed run's first line at the first tenth past what was done before
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit=unit, unit_scale=scale, leave=False, file=sys.stderr,
                            dynamic_ncols=True, initial=initial)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.quiet and self.total and self.done >= self.next_line * self.total:
            self._pass_done()
            elapsed = time.perf_counter() - self.started
            rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
            left = (self.total - self.done) / rate if rate > 0 else 0.0
            pace = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"  # a word2vec epoch takes seconds: not "0/s"
            speed = f"{pace} {self.unit}/s"
            if self.scale and rate >= 999.95:  # bytes: 95.1 MB/s, not 95,074,996 B/s
                power = min(int(math.log10(rate) // 3), 4)
                if power < 4 and round(rate / 1000 ** power, 1) >= 1000:  # 999,960 B/s: 1.0 MB/s, not 1000.0 kB/s
                    power += 1
                speed = f"{rate / 1000 ** power:.1f} {' kMGT'[power]}{self.unit}/s"
            print(f"{self.what}: {self.done / self.total:.0%} ({speed}, {duration(left)} left)",
                  file=sys.stderr, flush=True)

    def _pass_done(self) -> None:
        """The next tenth to print a line at: the first past the work done."""
        while self.total and self.next_line * self.total <= self.done:
            self.next_line += 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def duration(seconds: float) -> str:
    seconds = int(round(seconds)) or int(seconds > 0)  # work left is never "0 s" left
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
