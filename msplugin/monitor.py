"""A per-process monitor of replica status, shared by every facade connection.

It caches each watched replica's replication state (threads running, lag) and
refreshes it in a background thread at the group's ``replica_status_interval``, so that an
``age`` limit costs no status query per read (what made mysqlnd_ms's age filter expensive).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pymysql
import pymysql.cursors

__all__ = ["ReplicaStatus", "monitor"]

logger = logging.getLogger("msplugin.monitor")

Key = tuple[str, int, str, str]  # host, port, socket, user


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    io_running: bool
    sql_running: bool
    lag: float | None  # seconds behind the master; None when unknown (threads stopped)
    checked_at: float
    error: str = ""

    def within(self, age: float) -> bool:
        """Replicating and at most *age* seconds behind."""
        return self.io_running and self.sql_running and self.lag is not None and self.lag <= age


@dataclass
class _Target:
    params: dict[str, Any]  # PyMySQL connect() keywords, password included: never logged
    interval: float
    due: float = 0.0
    conn: pymysql.connections.Connection[Any] | None = None


class ReplicaMonitor:
    """Watches replicas; ``status()`` is a dict lookup, the queries run in a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._targets: dict[Key, _Target] = {}
        self._status: dict[Key, ReplicaStatus] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, key: Key, params: Mapping[str, Any], interval: float) -> None:
        """Start watching a replica; the first status is fetched before this returns."""
        with self._lock:
            target = self._targets.get(key)
            if target is not None:
                target.interval = min(target.interval, interval)
                return
            target = _Target(dict(params), interval)
            self._targets[key] = target
        self._refresh(key, target)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="msplugin-monitor", daemon=True
                )
                self._thread.start()

    def status(self, key: Key) -> ReplicaStatus | None:
        return self._status.get(key)

    def stop(self) -> None:
        """Stop watching everything and close the monitor's connections."""
        with self._lock:
            targets, self._targets = self._targets, {}
            self._status = {}
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None:
            thread.join(timeout=5)
        self._wake.clear()
        for target in targets.values():
            if target.conn is not None:
                with contextlib.suppress(pymysql.err.Error):
                    target.conn.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._targets:
                    return
                items = list(self._targets.items())
            now = time.monotonic()
            for key, target in items:
                if target.due <= now:
                    self._refresh(key, target)
            with self._lock:
                if self._thread is not threading.current_thread():
                    return
                next_due = min((t.due for t in self._targets.values()), default=now + 1)
            self._wake.wait(max(0.01, next_due - time.monotonic()))

    def _refresh(self, key: Key, target: _Target) -> None:
        target.due = time.monotonic() + target.interval
        try:
            if target.conn is None or not target.conn.open:
                target.conn = pymysql.connect(**target.params, autocommit=True)
            status = _query_status(target.conn)
        except pymysql.err.Error as exc:
            if target.conn is not None:
                with contextlib.suppress(pymysql.err.Error):
                    target.conn.close()
            target.conn = None
            status = ReplicaStatus(False, False, None, time.monotonic(), str(exc.args[-1]))
            logger.warning("replica status of %s:%s unavailable: %s", key[0], key[1], status.error)
        self._status[key] = status


def _query_status(conn: pymysql.connections.Connection[Any]) -> ReplicaStatus:
    mariadb = "MariaDB" in str(conn.get_server_info())  # type: ignore[no-untyped-call]
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW SLAVE STATUS" if mariadb else "SHOW REPLICA STATUS")
        row: dict[str, Any] = cur.fetchone() or {}

    def col(*names: str) -> Any:
        return next((row[n] for n in names if n in row), None)

    lag = col("Seconds_Behind_Master", "Seconds_Behind_Source")
    return ReplicaStatus(
        io_running=col("Slave_IO_Running", "Replica_IO_Running") == "Yes",
        sql_running=col("Slave_SQL_Running", "Replica_SQL_Running") == "Yes",
        lag=None if lag is None else float(lag),
        checked_at=time.monotonic(),
        error="" if row else "not a replica (no replication status)",
    )


monitor: Final = ReplicaMonitor()
