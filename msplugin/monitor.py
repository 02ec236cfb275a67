"""A per-process monitor of replica status, shared by every facade connection.

It caches each watched replica's replication state (threads running, lag) and refreshes it in
a background thread at the group's ``replica_status_interval``, so that neither an ``age``
limit nor the rule that keeps reads off replicas that stopped replicating costs a status query
per read (what made mysqlnd_ms's age filter expensive).

``not_replicating`` maps each replica seen with a replication thread not running (stopped,
broken, or the IO thread reconnecting) to when that was first seen; it is empty while every
replica replicates, so the statement path pays a truth test.
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

from msplugin import driver, health

__all__ = ["ReplicaStatus", "monitor", "not_replicating"]

logger = logging.getLogger("msplugin.monitor")

Key = tuple[str, int, str, str]  # host, port, socket, user
# A status query that takes longer than this is abandoned (the health check finds hung servers).
QUERY_TIMEOUT: Final = 2.0

# Replicas (host, port, socket) whose replication threads are not both running, and since
# when (monotonic): written by the monitor thread only, read on the statement path.
not_replicating: dict[driver.Address, float] = {}


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    io_running: bool
    sql_running: bool
    lag: float | None  # seconds behind the master; None when unknown (threads stopped)
    checked_at: float
    error: str = ""
    known: bool = True  # a replication status was read (False: an error, or not a replica)
    stopped_since: float | None = None  # first check of a run that saw a thread not running

    def within(self, age: float) -> bool:
        """Replicating and at most *age* seconds behind."""
        return self.io_running and self.sql_running and self.lag is not None and self.lag <= age

    @property
    def replicating(self) -> bool:
        return self.io_running and self.sql_running


@dataclass
class _Target:
    params: dict[str, Any]  # PyMySQL connect() keywords, password included: never logged
    interval: float
    due: float = 0.0
    conn: driver.Connection | None = None
    warned: bool = False


class ReplicaMonitor:
    """Watches replicas; ``status()`` is a dict lookup, the queries run in a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._targets: dict[Key, _Target] = {}
        self._status: dict[Key, ReplicaStatus] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(
        self, key: Key, params: Mapping[str, Any], interval: float, *, wait: bool = True
    ) -> None:
        """Start watching a replica; with *wait*, the first status is fetched before this
        returns (``age`` needs it for the first read), else by the monitor thread."""
        with self._lock:
            target = self._targets.get(key)
            if target is not None:
                target.interval = min(target.interval, interval)
                fetched = key in self._status
            else:
                target = _Target(dict(params), interval)
                self._targets[key] = target
                fetched = False
        if wait and not fetched:
            self._refresh(key, target)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="msplugin-monitor", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def status(self, key: Key) -> ReplicaStatus | None:
        return self._status.get(key)

    def stop(self) -> None:
        """Stop watching everything and close the monitor's connections."""
        with self._lock:
            targets, self._targets = self._targets, {}
            self._status = {}
            thread, self._thread = self._thread, None
        not_replicating.clear()
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
            self._wake.clear()
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
        if key[:3] in health.down:
            return  # quarantined: reads avoid it anyway, and a connect could wait its timeout
        previous = self._status.get(key)
        address = key[:3]
        try:
            if target.conn is None or not target.conn.open:
                target.conn = driver.connect(internal=True, autocommit=True, **target.params)
            status = _query_status(target.conn)
            target.warned = False
        except Exception as exc:  # the monitor thread must never die (nor the caller's connect)
            if target.conn is not None:
                with contextlib.suppress(Exception):
                    target.conn.close()
            target.conn = None
            error = str(exc.args[-1]) if isinstance(exc, pymysql.err.Error) else repr(exc)
            status = ReplicaStatus(False, False, None, time.monotonic(), error, False)
            if not target.warned and address not in health.down:  # once per run of failures
                target.warned = True
                logger.warning(
                    "replica status of %s:%s unavailable: %s", key[0], key[1], status.error
                )
        if status.known and not status.replicating:
            since = previous.stopped_since if previous is not None else None
            status = _with_stopped_since(status, since or status.checked_at)
            not_replicating[address] = status.stopped_since  # type: ignore[assignment]
        else:
            not_replicating.pop(address, None)
        self._status[key] = status


def _with_stopped_since(status: ReplicaStatus, since: float) -> ReplicaStatus:
    return ReplicaStatus(
        status.io_running,
        status.sql_running,
        status.lag,
        status.checked_at,
        status.error,
        status.known,
        since,
    )


def _query_status(conn: driver.Connection) -> ReplicaStatus:
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
        known=bool(row),
    )


def monitor_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """*params* (a backend's connect keywords) for the monitor's own connection: short
    timeouts, so one hung replica does not hold up the others' statuses."""
    out = dict(params)
    out.pop("autocommit", None)
    timeout = min(float(out.get("connect_timeout", 10)), QUERY_TIMEOUT)
    out.update(connect_timeout=timeout, read_timeout=QUERY_TIMEOUT, write_timeout=QUERY_TIMEOUT)
    return out


monitor: Final = ReplicaMonitor()
