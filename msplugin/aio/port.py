"""The asyncio edge's port (msplugin.port): the flows' I/O done with aiomysql's awaits.

aiomysql speaks PyMySQL's protocol with PyMySQL's error classes and result objects, so the
flows read its replies as they read PyMySQL's. What aiomysql lacks is done here:

- ``connect_timeout`` bounds the whole connect (aiomysql bounds the TCP connect only), and
  ``read_timeout`` / ``write_timeout`` bound each statement: a hung server costs seconds
  and the connection is closed (error 2013), as with PyMySQL's socket timeouts.
- PyMySQL's keyword ``database`` is aiomysql's ``db``; keywords aiomysql has no use for are
  refused when the connection is opened, naming them.

Nothing here blocks the event loop: a call that would (asking the server's
max_allowed_packet on a connection of its own, waiting for the replica monitor's first
statuses) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiomysql
from pymysql import err

from msplugin import driver
from msplugin.aio.pool import get_pool
from msplugin.config import PoolingConfig
from msplugin.options import PASSTHROUGH_KWARGS

__all__ = ["ASYNC_PORT", "AsyncPort"]

CR_SERVER_LOST: Final = 2013

# PyMySQL keywords aiomysql takes under another name; msplugin's own here (aiomysql has no
# statement timeouts: bounded() applies them); the PyMySQL keywords aiomysql takes as they are.
_RENAMED: Final = {"database": "db"}
_OURS: Final = frozenset({"read_timeout", "write_timeout"})
_TAKEN: Final = frozenset(
    {
        "charset",
        "connect_timeout",
        "init_command",
        "sql_mode",
        "ssl",
        "local_infile",
        "client_flag",
        "program_name",
        "conv",
        "use_unicode",
        "server_public_key",
    }
)


def aiomysql_params(params: dict[str, Any]) -> dict[str, Any]:
    """PyMySQL connect() keywords as aiomysql.connect() takes them (see the module)."""
    refused = sorted(
        k
        for k, v in params.items()
        if k in PASSTHROUGH_KWARGS and k not in _TAKEN and k not in _OURS and v is not None
    )
    if refused:
        raise err.NotSupportedError(
            f"msplugin.aio: aiomysql has no connect keyword {', '.join(refused)}; "
            "use ssl=<ssl.SSLContext> for TLS"
        )
    return {_RENAMED.get(k, k): v for k, v in params.items() if k not in _OURS}


async def open_connection(params: dict[str, Any]) -> Any:
    """An aiomysql connection for PyMySQL-style *params*, the whole connect bounded by
    ``connect_timeout``; read_timeout and write_timeout kept on it for the statements."""
    limit = params.get("connect_timeout") or 10
    try:
        conn = await asyncio.wait_for(aiomysql.connect(**aiomysql_params(params)), limit)
    except TimeoutError as exc:
        raise err.OperationalError(
            CR_SERVER_LOST,
            f"Can't connect to MySQL server on {params.get('host')!r}: no answer within "
            f"connect_timeout {limit:g} s (the server accepts TCP connections but does not "
            "complete the handshake: hung or overloaded)",
        ) from exc
    conn.msplugin_timeout = params.get("read_timeout") or params.get("write_timeout")
    _REGISTRY.add(conn, (params.get("host") or "localhost", int(params.get("port") or 3306),
                         params.get("unix_socket") or ""))  # fmt: skip
    return conn


class _Registry:
    """The process's aiomysql connections by server: what the quarantine counts as in use
    (its health checks ping only servers in use) and interrupts when a server is found hung
    or dead, from its own thread (msplugin.driver.register_driver)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[driver.Address, weakref.WeakSet[Any]] = {}

    def add(self, conn: Any, address: driver.Address) -> None:
        with self._lock:
            self._by.setdefault(address, weakref.WeakSet()).add(conn)

    def _open(self, address: driver.Address) -> list[Any]:
        with self._lock:
            conns = list(self._by.get(address, ()))
        return [c for c in conns if c._writer is not None]

    def count(self, address: driver.Address) -> int:
        return len(self._open(address))

    def interrupt(self, address: driver.Address) -> int:
        n = 0
        for conn in self._open(address):
            with contextlib.suppress(RuntimeError, AttributeError):  # its loop is closed
                # A statement awaiting the reply fails at once (2013); the owner closes it.
                conn._loop.call_soon_threadsafe(_abort, conn)
                n += 1
        return n


def _abort(conn: Any) -> None:
    writer = conn._writer
    if writer is not None:
        writer.transport.abort()


_REGISTRY: Final = _Registry()
driver.register_driver(_REGISTRY)


async def bounded(conn: Any, call: Any) -> Any:
    """Await *call* (a statement on *conn*), bounded by the connection's read_timeout: past
    it the connection is closed and the statement fails as a lost connection (2013)."""
    limit = getattr(conn, "msplugin_timeout", None)
    if not limit:
        return await call
    try:
        return await asyncio.wait_for(call, limit)
    except TimeoutError as exc:
        conn.close()
        raise err.OperationalError(
            CR_SERVER_LOST,
            f"Lost connection to MySQL server during query (no reply within read_timeout "
            f"{limit:g} s)",
        ) from exc


class AsyncPort:
    """aiomysql: one instance serves every async facade connection (it holds nothing)."""

    __slots__ = ()

    async def connect(
        self,
        params: dict[str, Any],
        pooling: PoolingConfig | None,
        info: str,
        before_wait: Callable[[], None] | None,
    ) -> tuple[Any, Any]:
        if pooling is not None and pooling.enabled:
            pool = await get_pool(params, pooling, info, open_connection)
            return await pool.checkout(before_wait), pool
        return await open_connection(params), None

    def release(self, conn: Any, pool: Any, *, broken: bool) -> None:
        if pool is not None:
            pool.checkin(conn, broken=broken)
        else:
            conn.close()

    def peer_closed(self, conn: Any) -> bool:
        reader = conn._reader
        return reader is None or reader.at_eof()

    def cursor(self, conn: Any, cursorclass: Any) -> Any:
        return cursorclass(conn, conn._echo)

    def empty_result(self, cursorclass: Any, sql: str) -> Any:
        done = cursorclass.__new__(cursorclass)
        aiomysql.Cursor.__init__(done, _NO_CONNECTION)
        done._loop = asyncio.get_running_loop()  # aiomysql's fetch*() make futures on it
        done._executed = sql
        done._rowcount = 0
        done._lastrowid = 0
        done._connection = None
        return done

    def execute(self, cur: Any, sql: str, args: Any) -> Awaitable[int]:
        # Not a coroutine of its own: aiomysql's, bounded only with a read_timeout. Every
        # I/O wait of a statement passes through each coroutine frame between the task and
        # the socket, so a frame less here is one less per wait.
        conn = cur._connection
        if conn.msplugin_timeout is None:
            result: Awaitable[int] = cur.execute(sql, args)
            return result
        return bounded(conn, cur.execute(sql, args))

    async def executemany(self, cur: Any, sql: str, args: Any) -> int | None:
        result: int | None = await bounded(cur._connection, cur.executemany(sql, args))
        return result

    async def callproc(self, cur: Any, name: str, args: Any) -> Any:
        return await bounded(cur._connection, cur.callproc(name, args))

    async def fetchone(self, cur: Any) -> Any:
        return await cur.fetchone()

    async def fetchall(self, cur: Any) -> Any:
        return await cur.fetchall()

    async def nextset(self, cur: Any) -> bool | None:
        result: bool | None = await bounded(cur._connection, cur.nextset())
        return result

    async def query(self, conn: Any, sql: str) -> Any:
        cur = aiomysql.Cursor(conn, conn._echo)
        try:
            await bounded(conn, cur.execute(sql))
            return await cur.fetchone() if cur.description else None
        finally:
            await cur.close()

    async def commit(self, conn: Any) -> None:
        await bounded(conn, conn.commit())

    async def rollback(self, conn: Any) -> None:
        await bounded(conn, conn.rollback())

    async def ping(self, conn: Any) -> None:
        await bounded(conn, conn.ping(False))

    async def call(self, conn: Any, method: str, *args: Any) -> None:
        if method == "set_character_set":  # aiomysql's name, without a collation
            method, args = "set_charset", args[:1]
        await bounded(conn, getattr(conn, method)(*args))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def max_allowed_packet(self, params: dict[str, Any]) -> int | None:
        return await asyncio.to_thread(driver.max_allowed_packet, params)

    async def blocking(self, call: Callable[[], object]) -> None:
        await asyncio.to_thread(call)


class _NoConnection:
    """What an answered-without-sending cursor is created on (aiomysql's needs a loop)."""

    loop = None


_NO_CONNECTION: Final = _NoConnection()

ASYNC_PORT = AsyncPort()
