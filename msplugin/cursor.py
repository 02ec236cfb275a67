"""The facade Cursor (PEP 249): run each statement on the backend its connection routes it to.

The per-statement path is ``Cursor.execute``: the fast lane for a repeated plain read, else
``Connection._route`` (classify: cached; decide: cached; pick a backend) and the backend's
PyMySQL cursor. Failures go to ``Connection._recover``, which decides whether the statement
runs again.

A facade connection serves one thread at a time (PEP 249 threadsafety 1). Every call that
talks to a server sets the connection's busy flag first; a second thread that calls while
the first is inside gets ProgrammingError at once, before anything is sent, instead of a
share of the first thread's replies.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

import pymysql
import pymysql.cursors
from pymysql import err

from msplugin.consistency import SESSION_STATE_CHANGED
from msplugin.filters import record_latency
from msplugin.health import down as _down
from msplugin.monitor import not_replicating as _not_replicating
from msplugin.state import NOTHING

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.connection import Connection

__all__ = ["Cursor", "CursorClass", "in_use_error"]

route_logger = logging.getLogger("msplugin.routing")
# What isEnabledFor() answered per level, which logging empties when any level changes
# (Logger.setLevel, logging.disable): the fast lane logs nothing, so it runs only while this
# says DEBUG is off, and an empty cache sends reads through _route, which asks again. Only
# debug() is called on this logger, so DEBUG is its one entry.
_route_levels: dict[int, bool] = getattr(route_logger, "_cache", {})
_ROUTE_LOG_OFF: Final = {logging.DEBUG: False}  # a dict comparison costs less than a call

CursorClass = type[pymysql.cursors.Cursor]
_T = TypeVar("_T")

_IN_TRANS: Final = pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS
_AUTOCOMMIT: Final = pymysql.constants.SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
# A fast-lane read whose reply has any flag but autocommit of these takes _after's full path.
_LANE_STATUS: Final = _IN_TRANS | _AUTOCOMMIT | SESSION_STATE_CHANGED


def in_use_error() -> err.ProgrammingError:
    """The error for a call on a connection another thread is using."""
    return err.ProgrammingError(
        "this msplugin connection is in use by another thread (or was re-entered from a "
        "callback): a connection serves one thread at a time (PEP 249 threadsafety 1); give "
        "each thread its own connection, or a pool. Nothing was sent"
    )


def encode_error(exc: UnicodeEncodeError, charset: str) -> err.DataError:
    """The PEP 249 error for a statement or parameter the connection cannot encode."""
    return err.DataError(
        f"the statement cannot be encoded in the connection's character set {charset} "
        f"({exc.reason}: {exc.object[exc.start : exc.end]!r} at position {exc.start}); "
        "nothing was sent"
    )


class Cursor:
    """A DB-API 2.0 cursor (PEP 249, "Cursor Objects") that runs each statement where it is routed.

    Results (description, rowcount, fetch*, ...) come from the backend cursor that ran the last
    statement.
    """

    def __init__(self, connection: Connection, cursorclass: CursorClass) -> None:
        self.connection = connection
        self._cursorclass = cursorclass
        self._cursors: dict[str, pymysql.cursors.Cursor] = {}
        self._current: pymysql.cursors.Cursor | None = None
        self._closed = False
        # Rows of an unbuffered cursor are read from the socket by fetch*(): they take the
        # connection's token like execute().
        self._unbuffered = issubclass(cursorclass, pymysql.cursors.SSCursor)
        self.arraysize = 1

    def __repr__(self) -> str:
        return f"<msplugin.Cursor {self._cursorclass.__name__} on {self.connection!r}>"

    def _cursor_for(self, backend: Backend) -> pymysql.cursors.Cursor:
        if self._closed:
            raise err.ProgrammingError("Cursor closed")
        cur = self._cursors.get(backend.name)
        if cur is None or cur.connection is not backend.conn:
            assert backend.conn is not None
            cur = backend.conn.cursor(self._cursorclass)
            cur.arraysize = self.arraysize
            self._cursors[backend.name] = cur
        return cur

    # ---------------------------------------------------------------- running statements

    def execute(self, query: str, args: Any = None) -> int:
        """Route *query* and execute it there (PEP 249 .execute()); return the affected rows."""
        conn = self.connection
        # Test and set with no call between them: CPython switches threads only at calls and
        # backward jumps, so of two threads exactly one finds the flag clear (see _enter).
        if conn._busy:
            raise in_use_error()
        conn._busy = True
        try:
            picked = None
            lane = conn._lane.get(query)
            if lane is not None:
                if (_down or _not_replicating) and conn._avoiding():
                    conn._lane_close()  # reads avoid such servers: the pick may differ
                elif _route_levels == _ROUTE_LOG_OFF:  # the routing log is off (and was asked)
                    # The fast lane: a read whose route only needs a slave picked (see
                    # Connection._lane_update); what _route and _after would do, inlined.
                    backend = (
                        conn._fixed_slave or conn._by_name[conn._picker.pick(conn._slave_names)]
                    )
                    bconn = backend.conn
                    if bconn is None:
                        picked = backend  # not connected yet, or lost: _route connects it
                    else:
                        cur = self._cursors.get(backend.name)
                        if cur is None or cur.connection is not bconn:
                            cur = self._cursor_for(backend)
                        self._current = cur
                        conn._last_used = backend
                        counts = conn._stats.counts
                        counts[lane[1]] += 1
                        counts["use_slave"] += 1
                        try:
                            result = cur.execute(query, args)
                        except err.MySQLError as exc:
                            conn._c = lane[0]  # _c: read by _recover and _after only
                            return self._run_again(exc, query, args, cur)
                        if bconn.server_status & _LANE_STATUS != _AUTOCOMMIT:  # type: ignore[attr-defined]
                            conn._c = lane[0]
                            conn._eff = NOTHING  # a transaction opened, or session state changed
                            conn._after(backend, cur)
                        elif conn._state is not None:
                            conn._state.found_rows_home = backend.name
                        return result
            return self._routed(query, args, picked)
        except UnicodeEncodeError as exc:
            conn._lane_close()
            raise encode_error(exc, conn.character_set_name()) from exc
        finally:
            conn._busy = False

    def _routed(self, query: str, args: Any, picked: Backend | None = None) -> int:
        """Route *query* the full way, run it, and recover from a failure. The caller holds
        the connection's token."""
        conn = self.connection
        try:
            backend = conn._route(query, picked)
        except BaseException:
            conn._lane_close()  # it may have left the connection half-way (a new pick, ...)
            raise
        cur = None
        try:
            cur = self._cursors.get(backend.name)
            if cur is None or cur.connection is not backend.conn:  # _cursor_for, inlined
                cur = self._cursor_for(backend)
            return self._run(backend, cur, query, args)
        except err.MySQLError as exc:
            return self._run_again(exc, query, args, self._current)

    def _run(self, backend: Backend, cur: pymysql.cursors.Cursor, query: str, args: Any) -> int:
        conn = self.connection
        self._current = cur
        if conn._check is not None:
            return self._execute_checked(backend, cur, query, args)
        if conn._timed:
            return self._run_timed(backend, cur, query, args)
        result = cur.execute(query, args)
        conn._after(backend, cur)
        return result

    def _run_timed(
        self, backend: Backend, cur: pymysql.cursors.Cursor, query: str, args: Any
    ) -> int:
        """fastest_response: the statement's round trip feeds its server's moving average."""
        start = time.perf_counter()
        result = cur.execute(query, args)
        record_latency(backend.address, time.perf_counter() - start)
        self.connection._after(backend, cur)
        return result

    def _run_again(
        self, exc: err.MySQLError, query: str, args: Any, cur: pymysql.cursors.Cursor | None
    ) -> int:
        """The statement failed: run it again where the rules allow (see msplugin.retry), else
        raise. The failed backend is the last used one (a session check may have moved the
        read to the master)."""
        conn = self.connection
        conn._lane_close()
        attempt = 0
        while True:
            failed = conn._last_used
            assert failed is not None
            backend = conn._recover(failed, exc, query, args, cur, attempt)
            attempt += 1
            try:
                cur = self._cursor_for(backend)
                return self._run(backend, cur, query, args)
            except err.MySQLError as again:
                exc = again

    def _execute_checked(
        self, backend: Backend, cur: pymysql.cursors.Cursor, query: str, args: Any
    ) -> int:
        """A session-consistent read: run it on the replica only if it has the GTID.

        With multi-statements enabled on the replica the check travels in the same packet as
        the read (one round trip); its result is discarded if the check fails. Either way a
        failed check re-runs the read on the master; only reads get here, so running one
        twice is harmless.
        """
        conn = self.connection
        check = conn._check
        assert check is not None
        conn._check = None
        if backend.multi_statements:
            # PyMySQL interpolates args into the whole text: a % of the check must be doubled.
            prefix = check if args is None else check.replace("%", "%%")
            if conn._run_check(cur, f"{prefix};{query}", args):
                cur.nextset()
                conn._check_result(backend, True)
                conn._after(backend, cur)
                return cur.rowcount
        elif conn._run_check(cur, check, None):
            conn._check_result(backend, True)
            result = cur.execute(query, args)
            conn._after(backend, cur)
            return result
        conn._check_result(backend, False)
        master = conn._master()
        conn._last_used = master
        conn._stats.counts["use_master_session"] += 1
        if route_logger.isEnabledFor(logging.DEBUG):
            route_logger.debug(
                "%s -> %s: session check failed on %s", query[:200], master.name, backend.name
            )
        mcur = self._cursor_for(master)
        self._current = mcur
        result = mcur.execute(query, args)
        conn._after(master, mcur)
        return result

    def executemany(self, query: str, args: Sequence[Any]) -> int | None:
        """Route *query* once and run it for every item of *args* on that backend."""
        conn = self.connection
        conn._enter()
        try:
            backend = conn._route(query)
            if conn._check is not None:
                # A session read that would need a per-execution check: the master has the data.
                conn._check = None
                backend = conn._master()
                conn._last_used = backend
                conn._stats.counts["use_master_session"] += 1
            return self._run_once(
                backend, lambda cur: cur.executemany(query, args), "executemany() is never retried"
            )
        finally:
            conn._leave()

    def callproc(self, procname: str, args: Sequence[Any] = ()) -> Any:
        """Call a stored procedure on the master (PEP 249 .callproc())."""
        conn = self.connection
        conn._enter()
        try:
            backend = conn._route("CALL")
            return self._run_once(
                backend,
                lambda cur: cur.callproc(procname, args),
                "a procedure call is never retried",
            )
        finally:
            conn._leave()

    def _run_once(
        self, backend: Backend, run: Callable[[pymysql.cursors.Cursor], _T], refusal: str
    ) -> _T:
        """Run a call that is never retried (it may have run in part): a lost connection
        raises with *refusal*."""
        conn = self.connection
        cur = self._cursor_for(backend)
        self._current = cur
        try:
            result = run(cur)
        except UnicodeEncodeError as exc:
            raise encode_error(exc, conn.character_set_name()) from exc
        except err.MySQLError as exc:
            conn._raise_if_lost(backend, exc, refusal)
            raise
        conn._after(backend, cur)
        return result

    def mogrify(self, query: str, args: Any = None) -> str:
        """Return *query* with *args* interpolated, as execute() would send it (PyMySQL's
        extension of PEP 249). Escaping follows the master's session, or PyMySQL's defaults
        before any server is connected."""
        if args is None:
            return query
        escape = self.connection.escape
        if isinstance(args, dict):
            escaped: Any = {key: escape(item) for key, item in args.items()}
        elif isinstance(args, list | tuple):
            escaped = tuple(map(escape, args))
        else:
            warnings.warn(
                "single argument is deprecated and will be removed in the next version.",
                DeprecationWarning,
                stacklevel=2,
            )
            escaped = escape(args)
        try:
            return str(query % escaped)
        except TypeError as exc:
            raise err.ProgrammingError(str(exc)) from exc

    # ---------------------------------------------------------------- results

    def _result(self) -> pymysql.cursors.Cursor:
        cur = self._current
        if cur is None:
            raise err.ProgrammingError("execute() first")
        return cur

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
        cur = self._current  # not self._result(): a call less per row
        if cur is None:
            raise err.ProgrammingError("execute() first")
        if self._unbuffered:
            return self._fetch(lambda c: c.fetchone())
        return cur.fetchone()

    def fetchmany(self, size: int | None = None) -> Any:
        # arraysize is this cursor's: the backend cursor may predate a change to it.
        n = self.arraysize if size is None else size
        if not self._unbuffered:
            return self._result().fetchmany(n)  # no socket I/O: no token, no closure
        return self._fetch(lambda cur: cur.fetchmany(n))

    def fetchall(self) -> Any:
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
        conn = self.connection
        cur = self._result()
        conn._enter()
        try:
            return cur.nextset()
        finally:
            conn._leave()

    def scroll(self, value: int, mode: str = "relative") -> None:
        self._fetch(lambda cur: cur.scroll(value, mode))

    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    @property
    def description(self) -> Any:
        return self._current.description if self._current is not None else None

    @property
    def rowcount(self) -> int:
        return self._current.rowcount if self._current is not None else -1

    @property
    def lastrowid(self) -> int | None:
        return self._current.lastrowid if self._current is not None else None

    @property
    def rownumber(self) -> int:
        return self._current.rownumber if self._current is not None else 0

    @property
    def warning_count(self) -> int:
        """Warnings of the last statement (PyMySQL's cursor attribute); 0 before any."""
        return self._current.warning_count if self._current is not None else 0

    @property
    def _executed(self) -> str | None:
        """The last statement as sent, arguments interpolated (PyMySQL's attribute; Django's
        ``last_executed_query`` reads it)."""
        return self._current._executed if self._current is not None else None  # type: ignore[attr-defined]

    def setinputsizes(self, *args: Any) -> None:
        """Does nothing (PEP 249 allows it)."""

    def setoutputsize(self, *args: Any) -> None:
        """Does nothing (PEP 249 allows it)."""

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
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
