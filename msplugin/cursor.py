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
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pymysql
import pymysql.cursors
from pymysql import err

from msplugin import gtid_reads, recovery, replay
from msplugin.classify import cut_sql
from msplugin.filters import record_latency
from msplugin.health import down as _down
from msplugin.monitor import not_replicating as _not_replicating

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.connection import Connection
    from msplugin.memo import Memo
    from msplugin.step import Step

__all__ = ["Cursor", "CursorClass", "in_use_error"]

route_logger = logging.getLogger("msplugin.routing")

CursorClass = type[pymysql.cursors.Cursor]
_T = TypeVar("_T")


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
        self._router = connection._router
        self._core = connection._router.core
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
            memo = core.memo.get(query)
            if memo is None:
                return self._routed(query, args, None)
            server = memo.server
            if memo.candidates and (
                server is None or server != router.picker.chosen or _down or _not_replicating
            ):
                if memo.session:
                    return self._session_read(memo, query, args)
                backend = router.remembered_read(memo)  # picked now
                if backend is None:
                    return self._routed(query, args, None)
            else:
                backend = router.by_name[server]  # type: ignore[index]
            bconn = backend.conn
            if bconn is None:  # not connected yet, or lost: the full path connects it
                return self._routed(query, args, backend if memo.candidates else None)
            if memo.start:  # it opens an optimistic transaction: the replica keeps its result
                return replay.remembered_start(self, memo, backend, query, args)
            # The core decided this text in this state before: run it where it went then.
            name = backend.name
            cur = self._cursors.get(name)
            if cur is None or cur.connection is not bconn:
                cur = self._cursor_for(backend)
            self._current = cur
            if memo.dirty:
                backend.dirty = True
            if route_logger.isEnabledFor(logging.DEBUG):
                route_logger.debug("%s -> %s: %s", cut_sql(query), name, memo.reason)
            try:
                result = cur.execute(query, args)
            except err.MySQLError as exc:
                core.hit(memo, name)
                return self._run_again(exc, args, cur, router.step(memo, backend, query))
            if not core.ran(memo, name, bconn.server_status):
                router.ran_remembered(memo, backend, query, cur)
            return result
        except UnicodeEncodeError as exc:
            raise encode_error(exc, conn.character_set_name()) from exc
        finally:
            conn._busy = False

    def _session_read(self, memo: Memo, query: str, args: Any) -> int:
        """A remembered session read: its server is chosen again (the GTID state decides),
        its text is not classified again. The caller holds the connection's token."""
        step = gtid_reads.session_step(self._router, memo, query)
        if step is None:
            return self._routed(query, args, None)
        try:
            cur = self._cursor_for(step.backend)
            self._current = cur
            if step.check is not None:
                return self._execute_checked(step, cur, args, memo)
            result = cur.execute(query, args)
        except err.MySQLError as exc:
            return self._run_again(exc, args, self._current, step)
        self._session_read_ran(step, cur, memo)
        return result

    def _routed(self, query: str, args: Any, picked: Backend | None = None) -> int:
        """Route *query* the full way, run it, and recover from a failure. The caller holds
        the connection's token."""
        core = self._core
        if core.optimistic is not None:
            return replay.execute(self, query, args)
        if core.optimistic_on and replay.held_back(self, query):
            return 0
        return self._run_routed(query, args, picked)

    def _run_routed(self, query: str, args: Any, picked: Backend | None = None) -> int:
        """_routed() with no optimistic transaction open on a replica."""
        step = self._router.route(query, picked)
        try:
            cur = self._cursor_for(step.backend)
            return self._run(step, cur, args)
        except err.MySQLError as exc:
            return self._run_again(exc, args, self._current, step)

    def _run(self, step: Step, cur: pymysql.cursors.Cursor, args: Any) -> int:
        if self._core.deferred is not None:  # the first statement after a held-back BEGIN
            replay.send_deferred(self, step)
        if step.opens_on_replica():
            return replay.start(self, step, args)  # the replica keeps what it answers
        self._current = cur
        if step.check is not None:
            return self._execute_checked(step, cur, args)
        if self._router.timed:
            return self._run_timed(step, cur, args)
        result = cur.execute(step.sql, args)
        self._router.after(step, cur)
        return result

    def _run_timed(self, step: Step, cur: pymysql.cursors.Cursor, args: Any) -> int:
        """fastest_response: the statement's round trip feeds its server's moving average."""
        start = time.perf_counter()
        result = cur.execute(step.sql, args)
        record_latency(step.backend.address, time.perf_counter() - start)
        self._router.after(step, cur)
        return result

    def _run_again(
        self, exc: err.MySQLError, args: Any, cur: pymysql.cursors.Cursor | None, step: Step
    ) -> int:
        """The statement failed: run it again where the rules allow (see msplugin.retry), else
        raise. The failed backend is the last used one (a session check may have moved the
        read to the master)."""
        attempt = 0
        while True:
            failed = self._router.last_used
            assert failed is not None
            if failed is not step.backend:
                step = self._router.step_on(step, failed)
            step = recovery.recover(self._router, step, exc, args, cur, attempt)
            attempt += 1
            try:
                cur = self._cursor_for(step.backend)
                return self._run(step, cur, args)
            except err.MySQLError as again:
                exc = again

    def _execute_checked(
        self, step: Step, cur: pymysql.cursors.Cursor, args: Any, memo: Memo | None = None
    ) -> int:
        """A session-consistent read: run it on the replica only if it has the GTID.

        With multi-statements enabled on the replica the check travels in the same packet as
        the read (one round trip); its result is discarded if the check fails. Either way a
        failed check re-runs the read on the master; only reads get here, so running one
        twice is harmless.
        """
        check, backend, query = step.check, step.backend, step.sql
        assert check is not None
        step.check = None
        if backend.multi_statements:
            # PyMySQL interpolates args into the whole text: a % of the check must be doubled.
            prefix = check if args is None else check.replace("%", "%%")
            if gtid_reads.run_check(self._router, cur, f"{prefix};{query}", args):
                cur.nextset()
                gtid_reads.check_result(self._router, backend, True)
                self._session_read_ran(step, cur, memo)
                return cur.rowcount
        elif gtid_reads.run_check(self._router, cur, check, None):
            gtid_reads.check_result(self._router, backend, True)
            result = cur.execute(query, args)
            self._session_read_ran(step, cur, memo)
            return result
        gtid_reads.check_result(self._router, backend, False)
        master = gtid_reads.session_fallback(self._router, step)
        mcur = self._cursor_for(master.backend)
        self._current = mcur
        result = mcur.execute(query, args)
        self._router.after(master, mcur)
        return result

    def _session_read_ran(self, step: Step, cur: pymysql.cursors.Cursor, memo: Memo | None) -> None:
        """A session read was answered (by a replica that has the GTID, or unchecked): learn
        from the reply, a remembered read by one comparison."""
        status: int = cur.connection.server_status  # type: ignore[attr-defined]
        if memo is None or not self._core.ran_session(memo, step.backend.name, status):
            self._router.after(step, cur)

    def executemany(self, query: str, args: Sequence[Any]) -> int | None:
        """Route *query* once and run it for every item of *args* on that backend (PEP 249
        .executemany(): https://peps.python.org/pep-0249/#cursor-objects)."""
        conn = self.connection
        conn._enter()
        try:
            replay.settle(self, "executemany() runs on the master")
            step = replay.not_optimistic(self, self._router.route(query), "executemany()")
            if step.check is not None:
                # A session read that would need a per-execution check: the master has the data.
                step = gtid_reads.session_fallback(self._router, step)
            return self._run_once(
                step, lambda cur: cur.executemany(query, args), "executemany() is never retried"
            )
        finally:
            conn._leave()

    def callproc(self, procname: str, args: Sequence[Any] = ()) -> Any:
        """Call a stored procedure on the master (PEP 249 .callproc():
        https://peps.python.org/pep-0249/#cursor-objects)."""
        conn = self.connection
        conn._enter()
        try:
            replay.settle(self, "a procedure call runs on the master")
            step = self._router.route("CALL")
            return self._run_once(
                step,
                lambda cur: cur.callproc(procname, args),
                "a procedure call is never retried",
            )
        finally:
            conn._leave()

    def _run_once(
        self, step: Step, run: Callable[[pymysql.cursors.Cursor], _T], refusal: str
    ) -> _T:
        """Run a call that is never retried (it may have run in part): a lost connection
        raises with *refusal*."""
        conn = self.connection
        if self._core.deferred is not None:
            replay.send_deferred(self, step)
        cur = self._cursor_for(step.backend)
        self._current = cur
        try:
            result = run(cur)
        except UnicodeEncodeError as exc:
            raise encode_error(exc, conn.character_set_name()) from exc
        except err.MySQLError as exc:
            recovery.raise_if_lost(self._router, step.backend, exc, refusal)
            raise
        self._router.after(step, cur)
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
        cur = self._result()
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

    @property
    def description(self) -> Any:
        """Column descriptions of the last result, None without one (PEP 249 .description:
        https://peps.python.org/pep-0249/#cursor-objects)."""
        return self._current.description if self._current is not None else None

    @property
    def rowcount(self) -> int:
        """Rows the last statement returned or changed; -1 before any (PEP 249 .rowcount:
        https://peps.python.org/pep-0249/#cursor-objects)."""
        return self._current.rowcount if self._current is not None else -1

    @property
    def lastrowid(self) -> int | None:
        """The AUTO_INCREMENT id of the last inserted row (PEP 249 extension .lastrowid:
        https://peps.python.org/pep-0249/#optional-db-api-extensions)."""
        return self._current.lastrowid if self._current is not None else None

    @property
    def rownumber(self) -> int:
        """Index of the next row in the result set (PEP 249 extension .rownumber:
        https://peps.python.org/pep-0249/#optional-db-api-extensions)."""
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
        """Does nothing, as PEP 249 allows (.setinputsizes():
        https://peps.python.org/pep-0249/#cursor-objects)."""

    def setoutputsize(self, *args: Any) -> None:
        """Does nothing, as PEP 249 allows (.setoutputsize():
        https://peps.python.org/pep-0249/#cursor-objects)."""

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
