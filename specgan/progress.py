"""Progress for the long stages: a tqdm bar, or with ``--no-progress`` a plain line every
``every`` seconds (and at the end), so a log shows where a long prepare, features or evaluate run
is without bars' carriage returns. The CLI sets :data:`ENABLED` once for the whole command.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

__all__ = ["ENABLED", "bar"]

ENABLED = True          # False: plain periodic lines instead of bars (specgan --no-progress)
EVERY_SECONDS = 30.0


class _Plain:
    """tqdm's small surface (iteration, ``update``, context manager) as periodic plain lines."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, every: float):
        self.iterable, self.total, self.desc, self.unit, self.every = iterable, total, desc, unit, every
        if self.total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)
        self.n, self.t0 = 0, time.perf_counter()
        self.t_last = self.t0

    def _line(self, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.t_last < self.every:
            return
        self.t_last = now
        rate = self.n / max(now - self.t0, 1e-9)
        of = f"/{self.total}" if self.total else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}s ({rate:.1f}/s){' done' if final else ''}", file=sys.stderr,
              flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._line()

    def __iter__(self) -> Iterator[Any]:
        for x in self.iterable:
            yield x
            self.update()
        self.close()

    def close(self) -> None:
        if self.n:
            self._line(final=True)
            self.n = 0  # once

    def set_postfix(self, *a, **kw) -> None:
        pass

    def __enter__(self) -> "_Plain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
        disable: bool = False, **kw):
    """A tqdm bar where progress is on, else periodic plain lines; ``disable`` silences both."""
    if disable:
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True, **kw)
    if ENABLED:
        return tqdm(iterable, total=total, desc=desc, unit=unit, **kw)
    return _Plain(iterable, total, desc, unit, EVERY_SECONDS)
