"""Statement and connection counters, per facade connection and for the whole process.

Counting is a plain dict increment on the connection's own counter (a facade connection is not
shared between threads, PEP 249 threadsafety 1), so the statement path takes no lock. The
process-wide view sums the live connections' counters and those of connections already gone.
"""

from __future__ import annotations

import threading
import weakref
from typing import Final

from msplugin.pool import pool_stats

__all__ = ["STAT_NAMES", "Stats", "get_stats"]

# mysqlnd_ms's names where the concept is the same; msplugin's own names after them.
STAT_NAMES: Final = (
    "use_slave",
    "use_master",
    "use_slave_guess",
    "use_master_guess",
    "use_slave_sql_hint",
    "use_master_sql_hint",
    "use_last_used_sql_hint",
    "use_last_used_guess",
    "use_master_on_write",
    "use_master_qos_strong",
    "use_master_no_slaves",
    "use_master_failover",
    "use_slave_stale",
    "lazy_connections_slave_success",
    "lazy_connections_slave_failure",
    "lazy_connections_master_success",
    "lazy_connections_master_failure",
    "non_lazy_connections_slave_success",
    "non_lazy_connections_slave_failure",
    "non_lazy_connections_master_success",
    "non_lazy_connections_master_failure",
    "trx_autocommit_on",
    "trx_autocommit_off",
    "trx_master_forced",
    "trx_read_only_slave",
    "use_slave_trx",
    "use_master_age",
    "use_master_session",
    "gtid_tracked",
    "gtid_untracked",
    "gtid_replica_known",
    "gtid_checks",
    "gtid_check_failed",
    "gtid_fetch",
    "gtid_on_commit",
    "state_warnings",
    "state_moved",
    "state_replayed",
    "state_server_changes",
    "connections_lost",
    "read_retries",
    "unsent_retries",
    "transient_error_retries",
)

_lock = threading.Lock()
_finished: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
_live: weakref.WeakSet[Stats] = weakref.WeakSet()


def _fold(counts: dict[str, int]) -> None:
    with _lock:
        for name, n in counts.items():
            _finished[name] += n
        counts.clear()


class Stats:
    """The counters of one facade connection; folded into the process totals when it goes."""

    __slots__ = ("__weakref__", "counts")

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        with _lock:
            _live.add(self)
        weakref.finalize(self, _fold, self.counts)

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


def get_stats() -> dict[str, int]:
    """Return the process-wide counters: every facade connection, open or closed, summed,
    and the connection pools' counters (pool_*)."""
    with _lock:
        total = dict(_finished)
        for stats in list(_live):
            for name, n in stats.counts.items():
                total[name] += n
    total.update(pool_stats())
    return total
