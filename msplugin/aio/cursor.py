"""The async facade cursor: aiomysql's cursor surface, each statement routed by the same
flows as the sync cursor's (msplugin.statement), awaited here.

A remembered statement takes the short path, as in msplugin.cursor: Router.recall() picks
its server, aiomysql runs it, the core compares the reply. Everything else is a flow.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiomysql
from pymysql import err

from msplugin import statement
from msplugin.cursor import encode_error
from msplugin.cursor_base import CursorBase
from msplugin.facade import in_use_error

if TYPE_CHECKING:
    from msplugin.aio.connection import Connection

__all__ = ["Cursor"]


class Cursor(CursorBase):
    """An async DB-API cursor (aiomysql's ``Cursor`` surface) over a facade connection."""

    connection: Connection

    def __init__(self, connection: Connection, cursorclass: Any) -> None:
        super().__init__(connection, cursorclass, issubclass(cursorclass, aiomysql.SSCursor))

    async def execute(self, query: str, args: Any = None) -> int:
        """Route *query* and execute it there; return the affected rows."""
        conn = self.connection
        if conn._busy:
            raise in_use_error()
        conn._busy = True
        try:
            router = self._router
            core = self._core
            backend = router.recall(query, self._unbuffered)
            if backend is None:  # it needs more than the statement sent: a flow runs it
                return await statement.recalled(self, query, args)
            memo: Any = router.hit  # the core decided this text in this state before
            cur = self._cursor_for(backend)
            self._current = cur
            try:
                result = await self._port.execute(cur, query, args)
            except err.MySQLError as exc:
                return await statement.remembered_failed(self, memo, backend, query, args, exc)
            status = cur.connection.server_status
            if (memo.start or not core.ran(memo, backend.name, status)) and router.ran_remembered(
                memo, backend, query, args, cur
            ):
                await router.inject(backend)
            return result
        except UnicodeEncodeError as exc:
            raise encode_error(exc, conn.character_set_name()) from exc
        finally:
            conn._busy = False

    async def executemany(self, query: str, args: Sequence[Any]) -> int | None:
        """Route *query* once and run it for every item of *args* on that backend."""
        conn = self.connection
        conn._enter()
        try:
            return await statement.executemany(self, query, args)
        except UnicodeEncodeError as exc:
            raise encode_error(exc, conn.character_set_name()) from exc
        finally:
            conn._leave()

    async def callproc(self, procname: str, args: Sequence[Any] = ()) -> Any:
        """Call a stored procedure on the master."""
        conn = self.connection
        conn._enter()
        try:
            return await statement.callproc(self, procname, args)
        finally:
            conn._leave()

    async def _fetch(self, fetch: str, *args: Any) -> Any:
        """Await the current driver cursor's *fetch*; an unbuffered one reads the socket, so
        it holds the connection's token meanwhile."""
        cur = self._result()
        if not self._unbuffered:
            return await getattr(cur, fetch)(*args)
        conn = self.connection
        conn._enter()
        try:
            return await getattr(cur, fetch)(*args)
        finally:
            conn._leave()

    async def fetchone(self) -> Any:
        """The next row, or None when no more are available."""
        cur = self._current  # _fetch(), inlined for a buffered cursor: once per row
        if cur is not None and not self._unbuffered:
            return await cur.fetchone()
        return await self._fetch("fetchone")

    async def fetchmany(self, size: int | None = None) -> Any:
        """The next *size* rows, arraysize by default."""
        return await self._fetch("fetchmany", self.arraysize if size is None else size)

    async def fetchall(self) -> Any:
        """The remaining rows."""
        cur = self._current  # _fetch(), inlined for a buffered cursor: once per statement
        if cur is not None and not self._unbuffered:
            return await cur.fetchall()
        return await self._fetch("fetchall")

    async def scroll(self, value: int, mode: str = "relative") -> None:
        """Move in the result set, as the driver cursor class allows."""
        await self._fetch("scroll", value, mode)

    async def nextset(self) -> bool | None:
        """Skip to the next result set of a multi-statement reply; None when there is none."""
        cur = self._result()
        if cur.connection is None:  # a held-back BEGIN's result (msplugin.replay.held_back)
            return None
        conn = self.connection
        conn._enter()
        try:
            result: bool | None = await self._port.nextset(cur)
            return result
        finally:
            conn._leave()

    def __await__(self) -> Generator[Any, None, Cursor]:
        """``cur = await conn.cursor()`` works, as with aiomysql."""
        return self._itself().__await__()

    async def _itself(self) -> Cursor:
        return self

    def __aiter__(self) -> Cursor:
        return self

    async def __anext__(self) -> Any:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    async def close(self) -> None:
        """Close the driver cursors (unread results are drained, as aiomysql does)."""
        conn = self.connection
        if conn._busy:
            self._cursors.clear()
            self._closed = True
            return
        conn._busy = True
        try:
            for cur in self._cursors.values():
                await cur.close()
        finally:
            conn._busy = False
            self._cursors.clear()
            self._closed = True

    @property
    def closed(self) -> bool:
        """True once close() was called (aiomysql's attribute)."""
        return self._closed

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
