"""The facade Connection (PEP 249, and PyMySQL's Connection surface) over a group of servers.

Its state lives in msplugin.core; msplugin.router carries out the core's decisions for each
statement (the cursor, msplugin.cursor, runs them); msplugin.backends holds the connections to
the servers. This module is the API: transactions, API-level session settings applied to
every backend, service levels, explain(), and PyMySQL's extras.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import pymysql
import pymysql.cursors
from pymysql import err

from msplugin import sessions
from msplugin.config import Config
from msplugin.cursor import Cursor, CursorClass
from msplugin.facade import FacadeBase, in_use_error
from msplugin.filters import UserCallback
from msplugin.port import Flow, run_sync, run_void
from msplugin.surface import PyMySQLSurface
from msplugin.sync_port import SYNC_PORT

__all__ = ["Connection", "Cursor", "connect"]

_T = TypeVar("_T")


def connect(
    group: str,
    *,
    config: str | os.PathLike[str] | Config | None = None,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
    autocommit: bool = True,
    cursorclass: CursorClass = pymysql.cursors.Cursor,
    pick_server: UserCallback | str | None = None,
    connect_factory: Callable[..., Any] | None = None,
    **connect_kwargs: Any,
) -> Connection:
    """Open a facade connection to the servers of *group*.

    The configuration comes from *config* (a path or a loaded Config), else $MSPLUGIN_CONFIG,
    else ./msplugin.json. *user*, *password*, *database* and *connect_kwargs* (any other
    pymysql.connect() keyword but host, port and unix_socket; see msplugin.options) are the
    defaults for every server; per-server keys override them. *pick_server* is the ``user``
    filter's callback (a callable or "module:function"), when the configuration does not name
    one. Nothing is connected yet when ``lazy_connections`` is true (the default) or
    ``defer_connect=True`` is given. *connect_factory* opens every connection msplugin makes
    for this facade connection (backends, pooled ones, health checks, the replica monitor)
    instead of msplugin's PyMySQL subclass: it takes PyMySQL's connect() keywords and returns
    a PyMySQL-compatible connection (see msplugin.driver for what is lost).
    """
    conn, connect_now = Connection._create(
        group,
        config,
        {"user": user, "password": password, "database": database},
        connect_kwargs,
        port=SYNC_PORT,
        autocommit=autocommit,
        cursorclass=cursorclass,
        pick_server=pick_server,
        connect_factory=connect_factory,
    )
    run_sync(conn._opened(connect_now))
    return conn


class Connection(FacadeBase, PyMySQLSurface):
    """A DB-API 2.0 connection over a group of servers: one backend connection per server.

    See PEP 249, "Connection Objects". Statements are routed by Cursor.execute(); API-level
    state (autocommit, select_db, character set) is applied to every open backend and to
    backends opened later. Not safe to share between threads (threadsafety = 1). What it
    shares with msplugin.aio.Connection is msplugin.facade's; this class runs the flows to
    completion at once.
    """

    def _run(self, flow: Flow[_T]) -> _T:
        """Run an API call's *flow* holding the connection's token."""
        self._entered(flow)
        try:
            return run_sync(flow)
        finally:
            self._busy = False

    def cursor(self, cursorclass: CursorClass | None = None) -> Cursor:
        """Return a new Cursor; *cursorclass* is a PyMySQL cursor class (PEP 249 .cursor():
        https://peps.python.org/pep-0249/#connection-objects)."""
        self._check_open()
        return Cursor(self, cursorclass or self._cursorclass)

    def commit(self) -> None:
        """Commit on every backend with an open transaction (PEP 249 .commit():
        https://peps.python.org/pep-0249/#connection-objects).

        A connection lost on the way raises OperationalError naming the server and saying
        whether the transaction did not commit (the connection broke before COMMIT was sent)
        or its outcome is unknown (COMMIT sent, no reply); the transaction is over either way.
        """
        if self._busy:  # _enter(), inlined: ORMs commit once per unit of work
            raise in_use_error()
        self._busy = True
        try:
            run_void(sessions.end_transaction(self._router, "commit"))
        finally:
            self._busy = False

    def rollback(self) -> None:
        """Roll back on every backend with an open transaction (PEP 249 .rollback():
        https://peps.python.org/pep-0249/#connection-objects).

        Never fails because a backend connection is gone: the server rolled that transaction
        back when the connection broke; the connection is dropped and a warning logged.
        """
        self._run(sessions.end_transaction(self._router, "rollback"))

    def begin(self, read_only: bool = False) -> None:
        """Start a transaction; every statement runs where it started until commit/rollback.

        It starts on the master, or with ``read_only=True`` and trx_stickiness "on" on one slave.
        With trx_stickiness "optimistic" it is held back until its first statement, which
        decides (MANUAL 10).
        """
        self._run(self._begin(Cursor(self, pymysql.cursors.Cursor), read_only))

    def set_qos(self, level: str, *, age: int | None = None, gtid: str | None = None) -> None:
        """Set the service level for the following statements: strong, session or eventual.

        ``age`` (eventual only): read only from replicas at most that many seconds behind.
        ``gtid`` (session only): reads must see this GTID, e.g. one a previous request's
        connection returned from last_gtid(). Refused inside a transaction.
        """
        run_sync(self._set_qos(level, age, gtid))

    def set_session_state(self, mode: str) -> None:
        """Set how session state is handled from now on: "off", "warn" or "sync".

        Switching from "off" starts tracking from nothing: state that statements left before
        is unknown to msplugin. Between "warn" and "sync" what is tracked is kept.
        """
        run_sync(self._set_session_state(mode))

    def close(self) -> None:
        """Close every backend connection; a second close raises Error (PEP 249 .close():
        https://peps.python.org/pep-0249/#connection-objects).

        An open transaction is rolled back (by the pool's reset, or by the server when the
        connection closes). Refused while another thread is using the connection.
        """
        if self._core.closed:
            raise err.Error("Already closed")
        self._enter()
        try:
            self._close_backends()
        finally:
            self._leave()

    @property
    def open(self) -> bool:
        """True until close()."""
        return not self._core.closed

    def __enter__(self) -> Connection:
        """The connection itself; close() on leaving the block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection (unless closed already)."""
        if not self._core.closed:
            self.close()

    def autocommit(self, value: bool) -> None:
        """Set autocommit on every open backend and on those opened later."""
        self._check_open()
        self._run(self._autocommit(value))

    def select_db(self, db: str) -> None:
        """Make *db* the current database on every open backend and on those opened later."""
        self._check_open()
        self._run(self._select_db(db))

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        """Set the connection character set on every open backend and on those opened later."""
        self._check_open()
        self._run(self._set_character_set(charset, collation))

    def set_charset(self, charset: str) -> None:
        """Deprecated PyMySQL name of set_character_set()."""
        warnings.warn(
            "'set_charset' is deprecated, use 'set_character_set' instead",
            DeprecationWarning,
            2,
        )
        self.set_character_set(charset)

    def set_isolation_level(self, level: str) -> None:
        """Set the transaction isolation level of every backend session, open or opened later.

        *level*: READ UNCOMMITTED, READ COMMITTED, REPEATABLE READ or SERIALIZABLE. Sent as
        SQL it would reach the master only (a SET is not a read).
        """
        self._check_open()
        self._run(self._set_isolation_level(level))

    def init_sessions(self, sql: str) -> None:
        """Run *sql* on every backend session: the open ones now, and each one opened later
        (a reconnect, a pooled session) right after connecting, as PyMySQL's
        ``init_command`` is. For a session setting that every server must have: sent as SQL,
        a ``SET`` is not a read and reaches the master only. Not inside a transaction."""
        self._check_open()
        self._run(self._init_sessions(sql))
