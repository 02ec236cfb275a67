"""Process-wide, thread-safe pools of backend (PyMySQL) connections, shared by facade connections.

A pool holds connections to one server for one set of credentials and connect options: its key
is host, port, socket, user, database, a digest of the password and every other connect()
option, so a connection is never handed to a borrower who could not have opened it himself
(another user, or the same user name with a wrong password). Checkout and return take one lock
for a few list operations; the I/O (connect, ping, reset) happens outside it.

A returned connection is reset before the next borrower sees it: an open transaction is rolled
back (logged at warning level), then COM_RESET_CONNECTION drops user variables, temporary
tables, prepared statements, locks and session settings, and the connection is brought back to
its freshly connected state (character set, sql_mode, init_command, autocommit, database). A
server without COM_RESET_CONNECTION (MySQL < 5.7.3, MariaDB < 10.2.4) gets its connection
closed instead of reused. Broken connections are discarded.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

import pymysql
from pymysql.connections import DEFAULT_CHARSET
from pymysql.constants import SERVER_STATUS
from pymysql.converters import escape_string

from msplugin import driver
from msplugin.config import PoolingConfig
from msplugin.errors import PoolTimeout

__all__ = [
    "POOL_STAT_NAMES",
    "Idle",
    "Pool",
    "after_reset",
    "close_pools",
    "discard_idle",
    "expired",
    "get_pool",
    "pool_key",
    "pool_stats",
    "register",
    "waiting",
]

logger = logging.getLogger("msplugin.pool")

COM_RESET_CONNECTION: Final = 0x1F
_IN_TRANS: Final = SERVER_STATUS.SERVER_STATUS_IN_TRANS

POOL_STAT_NAMES: Final = (
    "pool_created",  # connections opened by pools
    "pool_reused",  # checkouts served by an idle connection
    "pool_waits",  # checkouts that waited for a connection to come back
    "pool_timeouts",  # PoolTimeout raised
    "pool_resets",  # connections reset on return
    "pool_rollbacks",  # returned with an open transaction, rolled back
    "pool_discarded",  # broken, expired or unresettable connections closed
    "pool_size",  # connections now open in all pools (gauge)
    "pool_in_use",  # of which borrowed (gauge)
)

Conn: TypeAlias = "driver.Connection"
_PASSWORD_KEYS: Final = ("password", "passwd")


def pool_key(params: Mapping[str, Any], config: PoolingConfig) -> tuple[Any, ...]:
    """Which pool a connection with these connect() options belongs to (see the module)."""
    digest = hashlib.sha256(str(params.get("password", "")).encode()).hexdigest()
    others = repr(sorted((k, repr(v)) for k, v in params.items() if k not in _PASSWORD_KEYS))
    return (
        params.get("host"),
        params.get("port", 3306),
        params.get("unix_socket"),
        params.get("user"),
        params.get("database"),
        digest,
        others,
        config,
    )


class Idle:
    """An idle pooled connection, with when it was opened and when it came back."""

    __slots__ = ("conn", "created", "returned")

    def __init__(self, conn: Conn, created: float, returned: float) -> None:
        self.conn = conn
        self.created = created
        self.returned = returned


class Pool:
    """Connections to one server with one set of connect() options; see the module doc."""

    def __init__(self, params: Mapping[str, Any], config: PoolingConfig, label: str) -> None:
        self._params = dict(params)  # password included: never logged, never in repr
        self.config = config
        self.label = label
        self._cond = threading.Condition(threading.Lock())
        self._idle: deque[Idle] = deque()
        self._created: dict[int, float] = {}  # id(conn) -> creation time, for max_lifetime
        self.size = 0  # open connections, idle or borrowed, and connects under way
        self.in_use = 0
        self.closed = False
        self.counts = dict.fromkeys(POOL_STAT_NAMES[:-2], 0)

    def __repr__(self) -> str:
        return (
            f"<msplugin Pool {self.label} size={self.size} in_use={self.in_use} "
            f"max_size={self.config.max_size}>"
        )

    # ---------------------------------------------------------------- checkout

    def checkout(self, before_wait: Callable[[], None] | None = None) -> Conn:
        """Borrow a connection: an idle one, else a new one, else wait up to queue_timeout.

        *before_wait* runs (outside the lock) once before the first wait: the facade returns
        the connections it can spare there, so two facades never wait on each other forever.
        """
        cfg = self.config
        deadline = None
        waited = False
        while True:
            item = None
            with self._cond:
                if self.closed:
                    raise pymysql.err.InterfaceError(0, f"pool for {self.label} is closed")
                if self._idle:
                    item = self._idle.pop()  # the most recently returned: warm, least likely stale
                    self.in_use += 1
                    self.counts["pool_reused"] += 1
                elif self.size < cfg.max_size:
                    self.size += 1
                    self.in_use += 1
                else:
                    if not waited:
                        waited = True
                        self.counts["pool_waits"] += 1
                        if before_wait is not None:
                            self._cond.release()
                            try:
                                before_wait()
                            finally:
                                self._cond.acquire()
                            continue
                    deadline, remaining = waiting(cfg, self.label, deadline, self.counts)
                    self._cond.wait(remaining)
                    continue
            if item is None:
                return self._create()
            conn = self._usable(item)
            if conn is not None:
                return conn

    def fill(self) -> None:
        """Open connections until min_size are there (called when the pool is created)."""
        while True:
            with self._cond:
                if self.size >= self.config.min_size or self.closed:
                    return
                self.size += 1
                self.in_use += 1
            conn = self._create()
            with self._cond:
                self.in_use -= 1
                self._idle.append(Idle(conn, time.monotonic(), time.monotonic()))
                self._cond.notify()

    def _create(self) -> Conn:
        try:
            conn = driver.connect(**self._params)
        except BaseException:
            with self._cond:
                self.size -= 1
                self.in_use -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._created[id(conn)] = time.monotonic()
            self.counts["pool_created"] += 1
        return conn

    def _usable(self, item: Idle) -> Conn | None:
        """*item* if it may be lent now; else close it, free its slot and return None."""
        why = expired(self.config, item.created, item.returned, time.monotonic())
        if not why and self.config.pre_ping:
            try:
                item.conn.ping(reconnect=False)
            except pymysql.err.Error:
                why = "failed pre_ping"
        if not why:
            return item.conn
        logger.debug("pool for %s: closing a connection (%s)", self.label, why)
        self._drop(item.conn)
        return None

    # ---------------------------------------------------------------- return

    def checkin(self, conn: Conn, *, broken: bool = False) -> None:
        """Take back a borrowed connection: reset it for the next borrower, or close it."""
        if broken or not conn.open or self.closed:
            self._drop(conn)
            return
        try:
            self._reset(conn)
        except Exception as exc:  # whatever broke, returning a connection never fails close()
            logger.info("pool for %s: reset failed (%r); connection closed", self.label, exc)
            self._drop(conn)
            return
        self.put_back(conn, reset=True)

    def put_back(self, conn: Conn, *, reset: bool = False) -> None:
        """Make a borrowed connection, already *reset*, idle again (no I/O)."""
        created = self._created.get(id(conn), 0.0)
        with self._cond:
            if reset:
                self.counts["pool_resets"] += 1
            if not self.closed:
                self._idle.append(Idle(conn, created, time.monotonic()))
                self.in_use -= 1
                self._cond.notify()
                return
        self._drop(conn)

    def _reset(self, conn: Conn) -> None:
        if conn.server_status & _IN_TRANS:
            logger.warning(
                "returning a connection to %s to the pool with a transaction open: rolled back",
                self.label,
            )
            conn.rollback()
            self.counts["pool_rollbacks"] += 1
        conn._execute_command(COM_RESET_CONNECTION, b"")
        conn._read_ok_packet()
        for method, args in after_reset(self._params):
            getattr(conn, method)(*args)

    def _drop(self, conn: Conn) -> None:
        with self._cond:
            self.size -= 1
            self.in_use -= 1
            self.counts["pool_discarded"] += 1
            self._created.pop(id(conn), None)
            self._cond.notify()
        with contextlib.suppress(pymysql.err.Error):  # broken already: the socket is gone
            conn.close()

    def close(self) -> None:
        """Close the idle connections now and borrowed ones when they come back."""
        with self._cond:
            self.closed = True
            idle = list(self._idle)
            self._idle.clear()
            self.size -= len(idle)
            self._cond.notify_all()
        for item in idle:
            with contextlib.suppress(pymysql.err.Error):
                item.conn.close()


def waiting(
    config: PoolingConfig, label: str, deadline: float | None, counts: dict[str, int]
) -> tuple[float | None, float | None]:
    """A borrower must wait: its deadline (set at its first wait) and the seconds left of
    it (None: queue_timeout 0, no limit). PoolTimeout once none is left."""
    if deadline is None and config.queue_timeout:
        deadline = time.monotonic() + config.queue_timeout
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        counts["pool_timeouts"] += 1
        raise PoolTimeout(
            f"pool for {label}: all {config.max_size} connections (max_size) "
            f"stayed in use for queue_timeout {config.queue_timeout:g} s"
        )
    return deadline, remaining


def expired(config: PoolingConfig, created: float, returned: float, now: float) -> str:
    """Why an idle connection may not be lent any more ("" if it may): its age or idle time."""
    if config.max_lifetime and now - created > config.max_lifetime:
        return "max_lifetime"
    if config.max_idle_time and now - returned > config.max_idle_time:
        return "max_idle_time"
    return ""


def after_reset(params: Mapping[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """What brings a connection that COM_RESET_CONNECTION returned to the server's defaults
    back to its freshly connected state, as (connection method, arguments).

    What the driver's connect() set up: the pool's character set (not the connection's: a
    borrower's set_character_set() changed that too), sql_mode, init_command, database,
    autocommit."""
    steps: list[tuple[str, tuple[Any, ...]]] = [
        ("set_character_set", (params.get("charset") or DEFAULT_CHARSET, params.get("collation")))
    ]
    if params.get("sql_mode") is not None:
        steps.append(("query", (f"SET sql_mode='{escape_string(str(params['sql_mode']))}'",)))
    if params.get("init_command") is not None:
        steps.append(("query", (params["init_command"],)))
    if params.get("database"):
        steps.append(("select_db", (params["database"],)))
    steps.append(("autocommit", (bool(params.get("autocommit", False)),)))
    return steps


# Other kinds of pools (msplugin.aio's) that close_pools(), discard_idle() and pool_stats()
# cover too: each registers (close all, discard idle to a server, counts).
Other = tuple[Callable[[], None], Callable[[str, int, str], int], Callable[[], dict[str, int]]]
_others: list[Other] = []


def register(other: Other) -> None:
    """Have close_pools(), discard_idle() and pool_stats() cover another kind of pool."""
    _others.append(other)


_lock = threading.Lock()
_pools: dict[tuple[Any, ...], Pool] = {}
_closed_counts: dict[str, int] = dict.fromkeys(POOL_STAT_NAMES[:-2], 0)


def get_pool(params: Mapping[str, Any], config: PoolingConfig, label: str) -> Pool:
    """The process's pool for these connect() options (created on first use)."""
    key = pool_key(params, config)
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            created = pool is None
            if pool is None:
                pool = _pools[key] = Pool(params, config, label)
        if created and config.min_size:
            pool.fill()
    return pool


def discard_idle(host: str, port: int, socket: str) -> int:
    """Close the idle pooled connections to one server (it died: they are all broken)."""
    with _lock:
        pools = [p for k, p in _pools.items() if (k[0], k[1], k[2] or "") == (host, port, socket)]
    n = 0
    for pool in pools:
        with pool._cond:
            idle = list(pool._idle)
            pool._idle.clear()
            pool.in_use += len(idle)  # _drop counts each one out again
        for item in idle:
            pool._drop(item.conn)
        n += len(idle)
    return n + sum(other[1](host, port, socket) for other in _others)


def close_pools() -> None:
    """Close every pool of the process: idle connections now, borrowed ones on return."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
        for pool in pools:
            for name, n in pool.counts.items():
                _closed_counts[name] += n
    for pool in pools:
        pool.close()
    for other in _others:
        other[0]()


def pool_stats() -> dict[str, int]:
    """The process-wide pool counters (pool_*): totals over all pools, and two gauges."""
    with _lock:
        pools = list(_pools.values())
        total = dict(_closed_counts)
    total["pool_size"] = 0
    total["pool_in_use"] = 0
    for pool in pools:
        for name, n in pool.counts.items():
            total[name] += n
        total["pool_size"] += pool.size
        total["pool_in_use"] += pool.in_use
    for other in _others:
        for name, n in other[2]().items():
            total[name] += n
    return total
