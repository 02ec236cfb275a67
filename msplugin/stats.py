"""Statement and connection counters, per facade connection and for the whole process.

Counting is a plain dict increment on the connection's own counter (a facade connection is not
shared between threads, PEP 249 threadsafety 1), so the statement path takes no lock. The
process-wide view sums the live connections' counters and those of connections already gone.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Final, Protocol

from msplugin._types import Stat
from msplugin.pool import pool_stats

__all__ = ["STAT_NAMES", "Stats", "get_stats"]

# mysqlnd_ms's names where the concept is the same; msplugin's own names after them.
STAT_NAMES: Final = tuple(s.value for s in Stat)

_lock = threading.Lock()
_finished: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
_live: weakref.WeakSet[Stats] = weakref.WeakSet()


class Counted(Protocol):
    """A remembered statement (msplugin.memo.Memo): its runs count under two statistics,
    added up when the counters are read rather than at each run."""

    stat: str
    role_stat: str
    hits: int


Remembered = dict[Any, dict[str, Any]]  # the core's memos: state -> text -> Counted


def _pending(remembered: Remembered, into: dict[str, int]) -> None:
    """Add the runs of remembered statements not yet folded into the counters to *into*.
    list() copies: another thread (get_stats()) may read while the owner adds entries."""
    for memos in list(remembered.values()):
        for m in list(memos.values()):
            if m.hits:
                into[m.stat] += m.hits
                into[m.role_stat] += m.hits


def fold_hits(memos: dict[str, Any], counts: dict[str, int]) -> None:
    """Before *memos* are forgotten: their runs go into *counts* (the owner's thread only)."""
    _pending({None: memos}, counts)
    for m in memos.values():
        m.hits = 0


def _fold(counts: dict[str, int], remembered: Remembered) -> None:
    with _lock:
        _pending(remembered, counts)
        for name, n in counts.items():
            _finished[name] += n
        counts.clear()


class Stats:
    """The counters of one facade connection; folded into the process totals when it goes."""

    __slots__ = ("__weakref__", "counts", "remembered")

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        # The core's memos, shared: their runs count too (see Counted).
        self.remembered: Remembered = {}
        with _lock:
            _live.add(self)
        weakref.finalize(self, _fold, self.counts, self.remembered)

    def snapshot(self) -> dict[str, int]:
        out = dict(self.counts)
        _pending(self.remembered, out)
        return out


def get_stats() -> dict[str, int]:
    """Return the process-wide counters: every facade connection, open or closed, summed,
    and the connection pools' counters (pool_*)."""
    with _lock:
        total = dict(_finished)
        for stats in list(_live):
            for name, n in stats.counts.items():
                total[name] += n
            _pending(stats.remembered, total)
    total.update(pool_stats())
    return total
