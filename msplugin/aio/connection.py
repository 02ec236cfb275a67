"""The async facade connection: aiomysql's connection surface over a group of servers.

Everything it decides is msplugin.facade's and the core's, as for the sync facade; this
class awaits the same flows over aiomysql (msplugin.aio.port). A connection serves one task
at a time: a second task calling while the first awaits gets ProgrammingError at once,
before anything is sent.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, TypeVar

import aiomysql
from pymysql import err

from msplugin import sessions
from msplugin.aio.cursor import Cursor
from msplugin.aio.pool import settle
from msplugin.aio.port import ASYNC_PORT
from msplugin.config import Config
from msplugin.facade import FacadeBase
from msplugin.filters import UserCallback
from msplugin.port import Flow

__all__ = ["Connection", "connect"]

_T = TypeVar("_T")


async def connect(
    group: str,
    *,
    config: str | os.PathLike[str] | Config | None = None,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
    db: str | None = None,
    autocommit: bool = True,
    cursorclass: Any = aiomysql.Cursor,
    pick_server: UserCallback | str | None = None,
    **connect_kwargs: Any,
) -> Connection:
    """Open an async facade connection to the servers of *group*.

    As msplugin.connect(), with aiomysql's surface: *cursorclass* is an aiomysql cursor
    class, *db* is taken for *database* as aiomysql names it, and the other keywords are
    PyMySQL's connect() keywords that aiomysql has too (``ssl`` takes an SSLContext).
    ``read_timeout`` and ``write_timeout`` bound each statement (aiomysql has no such
    keywords: msplugin applies them). Nothing is connected yet when ``lazy_connections``
    is true (the default).
    """
    conn, connect_now = Connection._create(
        group,
        config,
        {"user": user, "password": password, "database": database or db},
        connect_kwargs,
        port=ASYNC_PORT,
        autocommit=autocommit,
        cursorclass=cursorclass,
        pick_server=pick_server,
    )
    await conn._opened(connect_now)
    return conn


class Connection(FacadeBase):
    """An async connection over a group of servers (aiomysql's surface; see the module)."""

    _kind = "msplugin.aio.Connection"

    async def _run(self, flow: Flow[_T]) -> _T:
        """Await an API call's *flow* holding the connection's token."""
        self._entered(flow)
        try:
            return await flow
        finally:
            self._busy = False

    def cursor(self, cursorclass: Any = None) -> Cursor:
        """A new cursor (also an async context manager); *cursorclass* is an aiomysql
        cursor class (aiomysql.DictCursor, aiomysql.SSCursor, ...)."""
        self._check_open()
        return Cursor(self, cursorclass or self._cursorclass)

    async def commit(self) -> None:
        """Commit on every backend with an open transaction (as msplugin.Connection.commit())."""
        await self._run(sessions.end_transaction(self._router, "commit"))

    async def rollback(self) -> None:
        """Roll back on every backend with an open transaction."""
        await self._run(sessions.end_transaction(self._router, "rollback"))

    async def begin(self, read_only: bool = False) -> None:
        """Start a transaction (as msplugin.Connection.begin())."""
        await self._run(self._begin(Cursor(self, aiomysql.Cursor), read_only))

    async def set_qos(self, level: str, *, age: int | None = None, gtid: str | None = None) -> None:
        """Set the service level for the following statements (as msplugin.Connection's)."""
        await self._set_qos(level, age, gtid)

    async def set_session_state(self, mode: str) -> None:
        """Set how session state is handled from now on: "off", "warn" or "sync"."""
        await self._set_session_state(mode)

    async def autocommit(self, value: bool) -> None:
        """Set autocommit on every open backend and on those opened later."""
        self._check_open()
        await self._run(self._autocommit(value))

    async def select_db(self, db: str) -> None:
        """Make *db* the current database on every open backend and on those opened later."""
        self._check_open()
        await self._run(self._select_db(db))

    async def set_charset(self, charset: str) -> None:
        """Set the connection character set on every open backend and those opened later."""
        self._check_open()
        await self._run(self._set_character_set(charset, None))

    async def set_isolation_level(self, level: str) -> None:
        """Set the transaction isolation level of every backend session, open or later."""
        self._check_open()
        await self._run(self._set_isolation_level(level))

    async def init_sessions(self, sql: str) -> None:
        """Run *sql* on every backend session, now and after each later connect."""
        self._check_open()
        await self._run(self._init_sessions(sql))

    async def ping(self, reconnect: bool = True) -> None:
        """Check that the servers answer (aiomysql's ping(): *reconnect* defaults to True).

        Every open backend is pinged; one that does not answer is dropped (reconnected when
        a statement needs it). With none open, the master is connected.
        """
        if self._core.closed:
            if not reconnect:
                raise err.Error("Already closed")
            self._core.reopened()
        await self._run(sessions.ping(self._router, reconnect))

    def close(self) -> None:
        """Close every backend connection at once (aiomysql's close(): no COM_QUIT); an open
        transaction is rolled back by the server. Closing twice does nothing, as in aiomysql."""
        if not self._core.closed:
            self._close_backends()

    async def ensure_closed(self) -> None:
        """Close every backend connection (aiomysql's ensure_closed()), and wait until the
        pooled ones are reset for their next borrower."""
        self.close()
        await settle()

    @property
    def closed(self) -> bool:
        """True once closed (aiomysql's attribute)."""
        return self._core.closed

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
