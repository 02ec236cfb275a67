"""Process-wide pools of aiomysql connections, with the sync pools' semantics (msplugin.pool).

The same key (server, user, database, password digest, every connect option: a session is
never lent to a borrower who could not have opened it), ``max_size``, ``min_size`` (filled
on first use), ``queue_timeout`` (PoolTimeout), ``pre_ping``, ``max_lifetime`` and
``max_idle_time``, and the same reset on return: an open transaction rolled back (logged),
COM_RESET_CONNECTION, then the freshly connected state again (msplugin.pool.after_reset).

aiomysql connections belong to the event loop that opened them, so a pool serves one loop:
the pools are kept per loop. Returning a connection is called without awaiting
(Backend.close()): its reset runs as a task of the pool's loop, and the connection is lent
again only once it is reset. msplugin.close_pools() closes these pools too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import pymysql
from pymysql.constants import SERVER_STATUS

from msplugin import pool as sync_pools
from msplugin.config import PoolingConfig
from msplugin.pool import Idle

__all__ = ["AsyncPool", "close_pools", "get_pool", "settle"]

logger = logging.getLogger("msplugin.pool")

COM_RESET_CONNECTION: Final = 0x1F
_IN_TRANS: Final = SERVER_STATUS.SERVER_STATUS_IN_TRANS


class AsyncPool:
    """aiomysql connections to one server with one set of options, for one event loop."""

    def __init__(
        self,
        params: Mapping[str, Any],
        config: PoolingConfig,
        label: str,
        opener: Callable[[dict[str, Any]], Any],
    ) -> None:
        self._params = dict(params)  # password included: never logged, never in repr
        self._open = opener  # msplugin.aio.port.open_connection
        self._loop = asyncio.get_running_loop()  # its connections' loop
        self.config = config
        self.label = label
        self._idle: deque[Idle] = deque()
        self._created: dict[int, float] = {}  # id(conn) -> creation time
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()  # resets under way
        self.size = 0  # open connections, idle or borrowed, connects and resets under way
        self.in_use = 0
        self.closed = False
        self.counts = dict.fromkeys(sync_pools.POOL_STAT_NAMES[:-2], 0)

    def __repr__(self) -> str:
        return (
            f"<msplugin AsyncPool {self.label} size={self.size} in_use={self.in_use} "
            f"max_size={self.config.max_size}>"
        )

    async def checkout(self, before_wait: Callable[[], None] | None = None) -> Any:
        """Borrow a connection: an idle one, else a new one, else wait up to queue_timeout.
        *before_wait* runs once before the first wait (msplugin.pool.Pool.checkout)."""
        cfg = self.config
        deadline: float | None = None
        waited = False
        while True:
            if self.closed:
                raise pymysql.err.InterfaceError(0, f"pool for {self.label} is closed")
            if self._idle:
                item = self._idle.pop()  # the most recently returned: warm
                self.in_use += 1
                self.counts["pool_reused"] += 1
                conn = await self._usable(item)
                if conn is not None:
                    return conn
                continue
            if self.size < cfg.max_size:
                self.size += 1
                self.in_use += 1
                return await self._create()
            if not waited:
                waited = True
                self.counts["pool_waits"] += 1
                if before_wait is not None:
                    before_wait()
                    continue
            deadline, remaining = sync_pools.waiting(cfg, self.label, deadline, self.counts)
            await self._wait(remaining)

    async def _wait(self, timeout: float | None) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _notify(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def fill(self) -> None:
        """Open connections until min_size are there (called when the pool is created)."""
        while self.size < self.config.min_size and not self.closed:
            self.size += 1
            self.in_use += 1
            conn = await self._create()
            self.in_use -= 1
            now = time.monotonic()
            self._idle.append(Idle(conn, now, now))
            self._notify()

    async def _create(self) -> Any:
        try:
            conn = await self._open(self._params)
        except BaseException:
            self.size -= 1
            self.in_use -= 1
            self._notify()
            raise
        self._created[id(conn)] = time.monotonic()
        self.counts["pool_created"] += 1
        return conn

    async def _usable(self, item: Idle) -> Any:
        """*item*'s connection if it may be lent now; else close it and return None."""
        conn: Any = item.conn  # an aiomysql connection in these pools
        why = sync_pools.expired(self.config, item.created, item.returned, time.monotonic())
        if not why and self.config.pre_ping:
            try:
                await conn.ping(False)
            except pymysql.err.Error:
                why = "failed pre_ping"
        if not why:
            return conn
        logger.debug("pool for %s: closing a connection (%s)", self.label, why)
        self._drop(conn)
        return None

    def checkin(self, conn: Any, *, broken: bool = False) -> None:
        """Take back a borrowed connection: its reset runs as a task, then it is idle again."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the pool's loop (it ended): nothing can reset it
            loop = None
        if broken or conn.closed or self.closed or loop is not self._loop:
            self._drop(conn)
            return
        task = loop.create_task(self._return(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _return(self, conn: Any) -> None:
        try:
            await self._reset(conn)
        except Exception as exc:  # whatever broke, returning a connection never fails
            logger.info("pool for %s: reset failed (%r); connection closed", self.label, exc)
            self._drop(conn)
            return
        self.counts["pool_resets"] += 1
        if self.closed:
            self._drop(conn)
            return
        self._idle.append(Idle(conn, self._created.get(id(conn), 0.0), time.monotonic()))
        self.in_use -= 1
        self._notify()

    async def _reset(self, conn: Any) -> None:
        if conn.server_status & _IN_TRANS:
            logger.warning(
                "returning a connection to %s to the pool with a transaction open: rolled back",
                self.label,
            )
            await conn.rollback()
            self.counts["pool_rollbacks"] += 1
        await conn._execute_command(COM_RESET_CONNECTION, b"")
        await conn._read_ok_packet()
        for method, args in sync_pools.after_reset(self._params):
            if method == "set_character_set":  # aiomysql's name, without a collation
                method, args = "set_charset", args[:1]
            await getattr(conn, method)(*args)

    def _drop(self, conn: Any) -> None:
        self.size -= 1
        self.in_use -= 1
        self.counts["pool_discarded"] += 1
        self._created.pop(id(conn), None)
        self._notify()
        with contextlib.suppress(RuntimeError):  # its event loop is closed: so is it
            conn.close()

    def discard_idle(self) -> int:
        idle = list(self._idle)
        self._idle.clear()
        self.in_use += len(idle)  # _drop counts each one out again
        for item in idle:
            self._drop(item.conn)
        return len(idle)

    def close(self) -> None:
        """Close the idle connections now and borrowed ones when they come back."""
        self.closed = True
        idle = list(self._idle)
        self._idle.clear()
        self.size -= len(idle)
        for item in idle:
            with contextlib.suppress(RuntimeError):  # its event loop is closed: so is it
                item.conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


# Per event loop: its pools by key (msplugin.pool.pool_key).
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], AsyncPool]] = (
    weakref.WeakKeyDictionary()
)
_closed_counts: dict[str, int] = dict.fromkeys(sync_pools.POOL_STAT_NAMES[:-2], 0)


async def get_pool(
    params: Mapping[str, Any],
    config: PoolingConfig,
    label: str,
    opener: Callable[[dict[str, Any]], Any],
) -> AsyncPool:
    """The running loop's pool for these connect() options (created, and filled to
    min_size, on first use)."""
    pools = _pools.setdefault(asyncio.get_running_loop(), {})
    key = sync_pools.pool_key(params, config)
    pool = pools.get(key)
    if pool is None:
        pool = pools[key] = AsyncPool(params, config, label, opener)
        if config.min_size:
            await pool.fill()
    return pool


async def settle() -> None:
    """Wait until the connections given back to the running loop's pools are reset."""
    for pool in list(_pools.get(asyncio.get_running_loop(), {}).values()):
        if pool._tasks:
            await asyncio.gather(*pool._tasks, return_exceptions=True)


async def close_pools() -> None:
    """Close the running loop's pools once the connections given back to them are reset:
    what an application does at shutdown (``await msplugin.aio.close_pools()``)."""
    await settle()
    for pool in _pools.pop(asyncio.get_running_loop(), {}).values():
        for name, n in pool.counts.items():
            _closed_counts[name] += n
        pool.close()


def _all() -> list[AsyncPool]:
    return [p for pools in list(_pools.values()) for p in pools.values()]


def _close_all() -> None:
    for loop in list(_pools):
        for pool in _pools.pop(loop).values():
            for name, n in pool.counts.items():
                _closed_counts[name] += n
            pool.close()


def _discard_idle(host: str, port: int, socket: str) -> int:
    return sum(
        p.discard_idle()
        for p in _all()
        if (p._params.get("host"), p._params.get("port", 3306), p._params.get("unix_socket") or "")
        == (host, port, socket)
    )


def _stats() -> dict[str, int]:
    total = dict(_closed_counts)
    total["pool_size"] = total["pool_in_use"] = 0
    for pool in _all():
        for name, n in pool.counts.items():
            total[name] += n
        total["pool_size"] += pool.size
        total["pool_in_use"] += pool.in_use
    return total


sync_pools.register((_close_all, _discard_idle, _stats))
