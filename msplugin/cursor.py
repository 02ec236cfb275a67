"""The facade Cursor (PEP 249): run each statement on the backend its connection routes it to.

The per-statement path is ``Cursor.execute``: a route the core remembered for this text in
this state (one lookup), else ``Connection._route`` (the full decision); then the backend's
PyMySQL cursor, and the reply goes back to the core. Failures go to ``Connection._recover``,
which decides whether the statement runs again.

A facade connection serves one thread at a time (PEP 249 threadsafety 1). Every call that
talks to a server sets the connection's busy flag first; a second thread that calls while
the first is inside gets ProgrammingError at once, before anything is sent, instead of a
share of the first thread's replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pymysql
import pymysql.cursors
from pymysql import err

from msplugin import statement
from msplugin.cursor_base import CursorBase
from msplugin.facade import in_use_error
from msplugin.port import run_sync

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.connection import Connection

__all__ = ["Cursor", "CursorClass", "encode_error"]

route_logger = logging.getLogger("msplugin.routing")

CursorClass = type[pymysql.cursors.Cursor]
_T = TypeVar("_T")


def encode_error(exc: UnicodeEncodeError, charset: str) -> err.DataError:
    """The PEP 249 error for a statement or parameter the connection cannot encode."""
    return err.DataError(
        f"the statement cannot be encoded in the connection's character set {charset} "
        f"({exc.reason}: {exc.object[exc.start : exc.end]!r} at position {exc.start}); "
        "nothing was sent"
    )


class Cursor(CursorBase):
    """A DB-API 2.0 cursor (PEP 249, "Cursor Objects") that runs each statement where it is routed.

    Results (description, rowcount, fetch*, ...) come from the backend cursor that ran the last
    statement. What it shares with msplugin.aio's cursor is msplugin.cursor_base's.
    """

    connection: Connection
    _current: pymysql.cursors.Cursor | None
    _cursors: dict[str, pymysql.cursors.Cursor]

    def __init__(self, connection: Connection, cursorclass: CursorClass) -> None:
        super().__init__(connection, cursorclass, issubclass(cursorclass, pymysql.cursors.SSCursor))

    def execute(self, query: str, args: Any = None) -> int:
        """Route *query* and execute it there; return the affected rows (PEP 249 .execute():
        https://peps.python.org/pep-0249/#cursor-objects)."""
        conn = self.connection
        # Test and set with no call between them: CPython switches threads only at calls and
        # backward jumps, so of two threads exactly one finds the flag clear (see _enter).
        if conn._busy:
            raise in_use_error()
        conn._busy = True
        try:
            router = self._router
            core = self._core
            backend = router.recall(query, self._unbuffered)
            if backend is None:  # it needs more than the statement sent: a flow runs it
                return run_sync(statement.recalled(self, query, args))
            # The core decided this text in this state before: run it where it went then.
            memo: Any = router.hit
            bconn: Any = backend.conn  # connected: recall() said so
            cur = self._cursors.get(backend.name)
            if cur is None or cur.connection is not bconn:
                cur = self._cursor_for(backend)
            self._current = cur
            try:
                result = cur.execute(query, args)
            except err.MySQLError as exc:
                failed = statement.remembered_failed(self, memo, backend, query, args, exc)
                return run_sync(failed)
            if (
                memo.start or not core.ran(memo, backend.name, bconn.server_status)
            ) and router.ran_remembered(memo, backend, query, args, cur):
                run_sync(router.inject(backend))
            return result
        except UnicodeEncodeError as exc:
            raise encode_error(exc, conn.character_set_name()) from exc
        finally:
            conn._busy = False

    def _routed(self, query: str, args: Any, picked: Backend | None = None) -> int:
        """Route *query* the full way, run it, recover (msplugin.statement.routed)."""
        return run_sync(statement.routed(self, query, args, picked))

    def executemany(self, query: str, args: Sequence[Any]) -> int | None:
        """Route *query* once and run it for every item of *args* on that backend (PEP 249
        .executemany(): https://peps.python.org/pep-0249/#cursor-objects)."""
        conn = self.connection
        conn._enter()
        try:
            return run_sync(statement.executemany(self, query, args))
        except UnicodeEncodeError as exc:
            raise encode_error(exc, conn.character_set_name()) from exc
        finally:
            conn._leave()

    def callproc(self, procname: str, args: Sequence[Any] = ()) -> Any:
        """Call a stored procedure on the master (PEP 249 .callproc():
        https://peps.python.org/pep-0249/#cursor-objects)."""
        conn = self.connection
        conn._enter()
        try:
            return run_sync(statement.callproc(self, procname, args))
        except UnicodeEncodeError as exc:
            raise encode_error(exc, conn.character_set_name()) from exc
        finally:
            conn._leave()

    # ---------------------------------------------------------------- results

    def _fetch(self, fetch: Callable[[pymysql.cursors.Cursor], _T]) -> _T:
        """Run *fetch* on the current backend cursor; unbuffered ones read the socket, so
        they hold the connection's token meanwhile."""
        cur = self._result()
        if not self._unbuffered:
            return fetch(cur)
        conn = self.connection
        conn._enter()
        try:
            return fetch(cur)
        finally:
            conn._leave()

    def fetchone(self) -> Any:
        """Return the next row, or None when no more are available (PEP 249 .fetchone():
        https://peps.python.org/pep-0249/#cursor-objects)."""
        cur = self._current  # not self._result(): a call less per row
        if cur is None:
            raise err.ProgrammingError("execute() first")
        if self._unbuffered:
            return self._fetch(lambda c: c.fetchone())
        return cur.fetchone()

    def fetchmany(self, size: int | None = None) -> Any:
        """Return the next *size* rows, arraysize by default (PEP 249 .fetchmany():
        https://peps.python.org/pep-0249/#cursor-objects)."""
        # arraysize is this cursor's: the backend cursor may predate a change to it.
        n = self.arraysize if size is None else size
        if not self._unbuffered:
            return self._result().fetchmany(n)  # no socket I/O: no token, no closure
        return self._fetch(lambda cur: cur.fetchmany(n))

    def fetchall(self) -> Any:
        """Return the remaining rows (PEP 249 .fetchall():
        https://peps.python.org/pep-0249/#cursor-objects)."""
        cur = self._current  # not self._result(): a call less per statement
        if cur is None:
            raise err.ProgrammingError("execute() first")
        if self._unbuffered:
            return self._fetch(lambda c: c.fetchall())
        return cur.fetchall()

    def fetchall_unbuffered(self) -> Iterator[Any]:
        """Rows one by one without keeping them (unbuffered cursors, as PyMySQL's SSCursor)."""
        if not self._unbuffered:
            raise err.NotSupportedError(
                "fetchall_unbuffered() needs an unbuffered cursor class (pymysql.cursors.SSCursor)"
            )
        self._result()
        return iter(self.fetchone, None)

    def nextset(self) -> bool | None:
        """Skip to the next result set of a multi-statement reply; None when there is none
        (PEP 249 .nextset(): https://peps.python.org/pep-0249/#cursor-objects)."""
        conn = self.connection
        cur: pymysql.cursors.Cursor = self._result()
        if cur.connection is None:  # a held-back BEGIN's result (msplugin.replay.held_back)
            return None
        conn._enter()
        try:
            return cur.nextset()
        finally:
            conn._leave()

    def scroll(self, value: int, mode: str = "relative") -> None:
        """Move in the result set, as the backend cursor class allows (PEP 249 extension
        .scroll(): https://peps.python.org/pep-0249/#optional-db-api-extensions)."""
        self._fetch(lambda cur: cur.scroll(value, mode))

    def __iter__(self) -> Cursor:
        """Iterate over the rows (PEP 249's optional extension:
        https://peps.python.org/pep-0249/#optional-db-api-extensions)."""
        return self

    def __next__(self) -> Any:
        """The next row (PEP 249's optional .next():
        https://peps.python.org/pep-0249/#optional-db-api-extensions)."""
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def close(self) -> None:
        """Close the backend cursors; the cursor cannot be used afterwards.

        Unread results are drained as PyMySQL does, unless another thread is using the
        connection: then they are left for the next statement to drain (no I/O here).
        """
        conn = self.connection
        if conn._busy:
            self._cursors.clear()
            self._closed = True
            return
        conn._busy = True
        try:
            for cur in self._cursors.values():
                cur.close()
        finally:
            conn._busy = False
            self._cursors.clear()
            self._closed = True

    def __enter__(self) -> Cursor:
        """The cursor itself; close() on leaving the block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the cursor."""
        self.close()
