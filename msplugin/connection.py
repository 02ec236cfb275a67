"""The facade Connection (PEP 249, and PyMySQL's Connection surface) over a group of servers.

Its state lives in msplugin.core; msplugin.router carries out the core's decisions for each
statement (the cursor, msplugin.cursor, runs them); msplugin.backends holds the connections to
the servers. This module is the API: transactions, API-level session settings applied to
every backend, service levels, explain(), and PyMySQL's extras.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

import pymysql
import pymysql.cursors
from pymysql import err
from pymysql.constants import CLIENT, SERVER_STATUS

from msplugin import driver, health
from msplugin._types import Level, Role
from msplugin.backends import Backend, ServerInfo, detail, isolation_sql
from msplugin.config import Config, GroupConfig, load_config
from msplugin.consistency import is_valid_gtid
from msplugin.cursor import Cursor, CursorClass, in_use_error
from msplugin.errors import (
    NoBackendAvailable,
    TransactionError,
)
from msplugin.explain import explain
from msplugin.filters import (
    UserCallback,
    load_callback,
)
from msplugin.options import sort_options
from msplugin.recovery import quarantine_note
from msplugin.retry import lost_commit
from msplugin.router import Router
from msplugin.routing import NO_TRANSACTION, OPEN, Explanation
from msplugin.state import MODES, Tracker
from msplugin.surface import PyMySQLSurface

__all__ = ["Connection", "Cursor", "connect"]

logger = logging.getLogger("msplugin.connection")

_ISOLATION_LEVELS: Final = ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")
_AUTOCOMMIT: Final = SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
_IN_TRANS: Final = SERVER_STATUS.SERVER_STATUS_IN_TRANS


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
    opts = sort_options({"user": user, "password": password, "database": database}, connect_kwargs)
    cfg = config if isinstance(config, Config) else load_config(config)
    conn = Connection(
        cfg.group(group),
        user=opts.identity.get("user"),
        password=opts.identity.get("password"),
        database=opts.identity.get("database"),
        autocommit=autocommit,
        cursorclass=cursorclass,
        connect_kwargs=opts.backend,
        pick_server=(
            load_callback(pick_server, "connect(pick_server=)")
            if isinstance(pick_server, str)
            else pick_server
        ),
        connect_factory=connect_factory,
    )
    if not conn.group.lazy_connections and not opts.defer_connect:
        conn._connect_all()
    return conn


class Connection(PyMySQLSurface):
    """A DB-API 2.0 connection over a group of servers: one backend connection per server.

    See PEP 249, "Connection Objects". Statements are routed by Cursor.execute(); API-level
    state (autocommit, select_db, character set) is applied to every open backend and to
    backends opened later. Not safe to share between threads (threadsafety = 1).
    """

    Warning = err.Warning
    Error = err.Error
    InterfaceError = err.InterfaceError
    DatabaseError = err.DatabaseError
    DataError = err.DataError
    OperationalError = err.OperationalError
    IntegrityError = err.IntegrityError
    InternalError = err.InternalError
    ProgrammingError = err.ProgrammingError
    NotSupportedError = err.NotSupportedError

    def __init__(
        self,
        group: GroupConfig,
        *,
        user: str | None,
        password: str | None,
        database: str | None,
        autocommit: bool,
        cursorclass: CursorClass,
        connect_kwargs: Mapping[str, Any],
        pick_server: UserCallback | None = None,
        connect_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.group = group
        defaults: dict[str, Any] = {"autocommit": autocommit, **connect_kwargs}
        if group.server_charset is not None and "charset" not in connect_kwargs:
            defaults["charset"] = group.server_charset
        for key, value in (("user", user), ("password", password), ("database", database)):
            if value is not None:
                defaults[key] = value
        if connect_factory is not None:
            # Travels with the keywords: to pools (a pool per factory), probes and monitors.
            defaults["connect_factory"] = connect_factory
        # API-level state that overrides per-server keys on every backend (select_db etc.).
        self._overrides: dict[str, Any] = {"autocommit": autocommit}
        self._defaults = defaults
        self._router = Router(
            group,
            autocommit=autocommit,
            defaults=defaults,
            overrides=self._overrides,
            pick_server=pick_server,
            user_multi=bool(int(connect_kwargs.get("client_flag", 0)) & CLIENT.MULTI_STATEMENTS),
        )
        self._core = self._router.core
        self._backends = self._router.backends
        self._stats = self._router.stats
        self._cursorclass = cursorclass
        # Set while a thread is inside a call that talks to a server (Cursor.execute, ...).
        self._busy = False
        conv: dict[Any, Any] = connect_kwargs.get("conv") or pymysql.converters.conversions
        self._encoders: dict[Any, Any] = {k: v for k, v in conv.items() if type(k) is not int}
        policy = self._core.policy
        if policy.age is not None or group.replica_stopped_limit is not None:
            self._backends.watch_replicas(wait=policy.age is not None)
        logger.info("facade connection for group %r (%s)", group.name, self._topology())

    def _connect_all(self) -> None:
        """lazy_connections false: connect the master and every slave now."""
        try:
            self._backends.connect_all()
        except NoBackendAvailable:
            self.close()
            raise

    def _topology(self) -> str:
        return ", ".join(
            f"{b.name}={b.server.host}:{b.server.port}" for b in self._backends.by_name.values()
        )

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if core.closed else "open"
        opened = [b.name for b in self._backends.by_name.values() if b.conn is not None]
        return (
            f"<msplugin.Connection group={self.group.name!r} {state} "
            f"connected={opened} last_used={core.last_used} autocommit={core.autocommit}>"
        )

    def _check_open(self) -> None:
        if self._core.closed:
            raise err.InterfaceError(0, "connection is closed")

    def _enter(self) -> None:
        """Mark the connection busy; raise at once if another thread is inside.

        The test and the set are two attribute operations with no call between them: CPython
        (with its GIL) switches threads only at calls and backward jumps, so of two threads
        exactly one finds the flag clear. Cheaper than a lock on the statement path (see
        bench/guard_cost.py); free-threaded builds get a best-effort check.
        """
        if self._busy:
            raise in_use_error()
        self._busy = True

    def _leave(self) -> None:
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
            self._end_transaction("commit")
        finally:
            self._busy = False

    def rollback(self) -> None:
        """Roll back on every backend with an open transaction (PEP 249 .rollback():
        https://peps.python.org/pep-0249/#connection-objects).

        Never fails because a backend connection is gone: the server rolled that transaction
        back when the connection broke; the connection is dropped and a warning logged.
        """
        self._enter()
        try:
            self._end_transaction("rollback")
        finally:
            self._leave()

    def _end_transaction(self, how: str) -> None:
        core = self._core
        if core.closed:
            raise err.InterfaceError(0, "connection is closed")
        failure: err.OperationalError | None = None
        pinned = self._backends.by_name[core.pinned] if core.pinned is not None else None
        if pinned is not None and pinned.conn is None and core.optimistic is None:
            # (An optimistic transaction on a replica only read: nothing was lost with it.)
            failure = self._lost_before(pinned, how)
        commit = how == "commit"
        for b in self._backends.by_name.values():
            conn = b.conn  # server_status, not b.in_transaction: this runs at every commit
            if conn is None or not (b.dirty or b is pinned or conn.server_status & _IN_TRANS):
                continue
            # COMMIT or ROLLBACK on b, inline: every unit of work of an ORM gets here.
            try:
                if not commit:
                    conn.rollback()
                elif driver.peer_closed(conn):
                    # The server closed it while idle: COMMIT would be lost, so it is not sent.
                    raise err.OperationalError(
                        health.CR_SERVER_GONE_ERROR, "the server closed the connection"
                    )
                else:
                    conn.commit()
            except err.MySQLError as exc:
                failure = failure or self._end_failed(b, how, exc)
                continue
            b.dirty = False
            if commit and b.role == Role.MASTER:
                self._router.committed(b)
        core.ended()
        if failure is not None:
            raise failure

    def _lost_before(self, pinned: Backend, how: str) -> err.OperationalError | None:
        """The transaction's backend lost its connection before commit() or rollback()."""
        if how == "commit":
            return err.OperationalError(
                health.CR_SERVER_LOST,
                f"commit: {pinned.info}: the transaction open there was lost with its "
                "connection earlier and did not commit",
            )
        logger.warning(
            "rollback: the transaction open on %s was lost with its connection "
            "earlier; the server rolled it back",
            pinned.info,
        )
        return None

    def _end_failed(self, b: Backend, how: str, exc: err.MySQLError) -> err.OperationalError | None:
        """COMMIT or ROLLBACK on *b* failed with *exc*: raise a server error; for a lost
        connection, the error commit() raises (None for rollback(), which logs it)."""
        if not health.is_disconnect(exc):
            b.dirty = False
            raise exc
        sent = not driver.not_sent(exc)
        why = quarantine_note(b)
        self._backends.lost(b, exc)
        if how == "rollback":
            logger.warning(
                "rollback: the connection to %s was lost (%s); the server rolled the "
                "transaction back",
                b.info,
                detail(exc),
            )
            return None
        return err.OperationalError(
            exc.args[0] if isinstance(exc.args[0], int) else health.CR_SERVER_LOST,
            f"commit: {b.info}: connection lost ({detail(exc)}); {why}{lost_commit(sent)}",
        )

    def begin(self, read_only: bool = False) -> None:
        """Start a transaction; every statement runs where it started until commit/rollback.

        It starts on the master, or with ``read_only=True`` and trx_stickiness "on" on one slave.
        With trx_stickiness "optimistic" it is held back until its first statement, which
        decides (MANUAL 10).
        """
        sql = "START TRANSACTION READ ONLY" if read_only else "BEGIN"
        self._enter()
        try:
            Cursor(self, pymysql.cursors.Cursor)._routed(sql, None)
        finally:
            self._leave()

    def set_qos(self, level: str, *, age: int | None = None, gtid: str | None = None) -> None:
        """Set the service level for the following statements: strong, session or eventual.

        ``age`` (eventual only): read only from replicas at most that many seconds behind.
        ``gtid`` (session only): reads must see this GTID, e.g. one a previous request's
        connection returned from last_gtid(). Refused inside a transaction.
        """
        core = self._core
        if core.trx_context() != NO_TRANSACTION:
            raise TransactionError("set_qos() inside a transaction: commit or roll back first")
        if level not in ("strong", "session", "eventual"):
            raise err.ProgrammingError(
                f"set_qos(): level must be 'strong', 'session' or 'eventual', got {level!r}"
            )
        if age is not None and (level != Level.EVENTUAL or not isinstance(age, int) or age < 0):
            raise err.ProgrammingError(
                "set_qos(): age is a number of seconds >= 0, with 'eventual' only"
            )
        if gtid is not None:
            if level != Level.SESSION:
                raise err.ProgrammingError("set_qos(): gtid goes with 'session' only")
            if not (is_valid_gtid(gtid, "mariadb") or is_valid_gtid(gtid, "mysql")):
                raise err.ProgrammingError(f"set_qos(): not a GTID: {gtid!r}")
            core.gtid.require(gtid, 0.0)
        core.set_policy(core.policy._replace(qos=level, age=age))
        if level == Level.SESSION and not core.track_gtids:
            core.track_gtids = True
            master = self._backends.master_backend
            if master is not None and master.conn is not None:
                self._backends.setup_tracking(master, gtids=True, state=False)
        if age is not None:
            self._backends.watch_replicas(wait=True)

    def set_session_state(self, mode: str) -> None:
        """Set how session state is handled from now on: "off", "warn" or "sync".

        Switching from "off" starts tracking from nothing: state that statements left before
        is unknown to msplugin. Between "warn" and "sync" what is tracked is kept.
        """
        core = self._core
        if mode not in MODES:
            raise err.ProgrammingError(
                f"set_session_state(): mode must be 'off', 'warn' or 'sync', got {mode!r}"
            )
        if mode == "off":
            core.set_tracker(None)
            return
        if core.tracker is not None:
            core.tracker.mode = mode
            core.set_tracker(core.tracker)
            return
        core.set_tracker(Tracker(mode, tuple(self._backends.by_name)))
        for b in self._backends.opened():
            self._backends.setup_tracking(b, gtids=False, state=True)

    def session_state(self) -> dict[str, dict[str, Any]]:
        """What each backend's session holds, as msplugin tracked it, for debugging.

        Per backend: session settings the application set there (statement texts), names of
        user variables, temporary tables and prepared statements, LOCK TABLES, the number of
        named locks, and whether the server reported changes no statement explains. Never
        variable values. Empty entries when session_state is "off".
        """
        tracker = self._core.tracker
        if tracker is None:
            return {name: {} for name in self._backends.by_name}
        return tracker.snapshot()

    @property
    def service_level(self) -> tuple[str, int | None]:
        """The service level reads follow now and its age limit: what set_qos() set last,
        else the configuration's (quality_of_service), else ("eventual", None)."""
        policy = self._core.policy
        return policy.qos, policy.age

    def last_gtid(self) -> str | None:
        """The GTID of this connection's last write (None if unknown), to carry to later reads."""
        return self._core.gtid.last_write

    def close(self) -> None:
        """Close every backend connection; a second close raises Error (PEP 249 .close():
        https://peps.python.org/pep-0249/#connection-objects).

        An open transaction is rolled back (by the pool's reset, or by the server when the
        connection closes). Refused while another thread is using the connection.
        """
        core = self._core
        if core.closed:
            raise err.Error("Already closed")
        self._enter()
        try:
            core.closed = True
            core.ended()
            for b in self._backends.by_name.values():
                b.close()
        finally:
            self._leave()
        logger.info("facade connection for group %r closed", self.group.name)

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

    def _broadcast(self, call: Callable[[Any], object]) -> None:
        """Apply an API setting to every open backend. A backend whose connection is lost is
        dropped (the setting is recorded and applied when it reconnects); a transaction open
        there is lost, and the next statement of it says so."""
        for b in self._backends.opened():
            try:
                call(b.conn)
            except err.MySQLError as exc:
                if not health.is_disconnect(exc):
                    raise
                logger.warning("%s: connection lost (%s); dropped", b.info, detail(exc))
                self._backends.lost(b, exc)

    def autocommit(self, value: bool) -> None:
        """Set autocommit on every open backend and on those opened later."""
        self._check_open()
        self._enter()
        try:
            value = bool(value)
            self._broadcast(lambda conn: conn.autocommit(value))
            self._overrides["autocommit"] = value
            pinned = self._router.pinned
            self._core.set_autocommit(value)
            if value and pinned is not None and pinned.conn is None:
                raise err.OperationalError(
                    health.CR_SERVER_LOST,
                    f"autocommit(True): {pinned.info}: the transaction open there was lost "
                    "with its connection and did not commit",
                )
        finally:
            self._leave()

    def get_autocommit(self) -> bool:
        """Whether autocommit is on: the master's session says so once it ran a statement
        (``SET autocommit=...`` sent as SQL included), else what autocommit() set."""
        master = self._backends.master_backend
        if master is not None and master.conn is not None:
            return bool(master.status & _AUTOCOMMIT)
        return self._core.autocommit

    def select_db(self, db: str) -> None:
        """Make *db* the current database on every open backend and on those opened later."""
        self._check_open()
        self._enter()
        try:
            self._broadcast(lambda conn: conn.select_db(db))
            self._overrides["database"] = db
            self._forget_setting("database")
        finally:
            self._leave()

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        """Set the connection character set on every open backend and on those opened later."""
        self._check_open()
        self._enter()
        try:
            self._broadcast(lambda conn: conn.set_character_set(charset, collation))
            self._overrides["charset"] = charset
            if collation is not None:
                self._overrides["collation"] = collation
            self._forget_setting("charset")
        finally:
            self._leave()

    def _forget_setting(self, key: str) -> None:
        """The API set *key* on every backend: no statement of the application's needs
        replaying for it any more."""
        tracker = self._core.tracker
        if tracker is not None:
            tracker.forget(key)
            self._core.moved()

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
        name = " ".join(level.upper().replace("-", " ").split())
        if name not in _ISOLATION_LEVELS:
            raise err.ProgrammingError(
                f"isolation level {level!r}: expected one of {', '.join(_ISOLATION_LEVELS)}"
            )
        self._enter()
        try:
            sql = isolation_sql(name)
            self._broadcast(lambda conn: conn.query(sql))
            self._backends.isolation = name
        finally:
            self._leave()

    def init_sessions(self, sql: str) -> None:
        """Run *sql* on every backend session: the open ones now, and each one opened later
        (a reconnect, a pooled session) right after connecting, as PyMySQL's
        ``init_command`` is. For a session setting that every server must have: sent as SQL,
        a ``SET`` is not a read and reaches the master only. Not inside a transaction."""
        self._check_open()
        if self._core.trx_context() == OPEN:
            raise TransactionError(
                "init_sessions() inside a transaction: commit or roll back first"
            )
        self._enter()
        try:
            self._broadcast(lambda conn: conn.query(sql))
            self._backends.init_sql.append(sql)
        finally:
            self._leave()

    def character_set_name(self) -> str:
        """The connection character set every backend uses (as PyMySQL names it)."""
        return str(self._overrides.get("charset") or self._defaults.get("charset") or "utf8mb4")

    @property
    def last_used(self) -> ServerInfo | None:
        """The server that ran the previous statement; None before the first."""
        return self._router.last_used.info if self._router.last_used is not None else None

    def explain(self, sql: str) -> Explanation:
        """Return where *sql* would run and why; nothing is executed or connected.

        The same decision as a statement's, on the same state (quarantined and failed servers,
        lag limits, filters, session state), minus the I/O: a replica the load balancer would
        pick at execution is named only when it is already known (random once, one left).
        """
        return explain(self._router, sql)

    def stats(self) -> dict[str, int]:
        """This connection's counters (see msplugin.get_stats() for the process)."""
        return self._stats.snapshot()
