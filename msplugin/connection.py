"""The facade Connection and Cursor (PEP 249): route each statement to a backend and run it there.

This is the only module that does statement I/O. The per-statement path is
``Cursor.execute -> Connection._route`` (classify: cached; decide: cached; pick a backend)
``-> PyMySQL cursor.execute``; everything else is bookkeeping done off that path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import pymysql
import pymysql.cursors
from pymysql import err

from msplugin.backends import Backend, ServerInfo
from msplugin.classify import Classification, classify
from msplugin.config import Config, GroupConfig, load_config
from msplugin.errors import NoBackendAvailable, NotSupportedError, RoutingError
from msplugin.filters import make_picker
from msplugin.routing import Decision, Explanation, Policy, Target, decide
from msplugin.stats import Stats

__all__ = ["Connection", "Cursor", "connect"]

logger = logging.getLogger("msplugin.connection")
route_logger = logging.getLogger("msplugin.routing")

# connect() keywords passed on to every PyMySQL connection (per-server keys override them).
PASSTHROUGH_KWARGS: Final = frozenset(
    {
        "charset",
        "collation",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "init_command",
        "sql_mode",
        "ssl",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_disabled",
        "ssl_verify_cert",
        "ssl_verify_identity",
        "local_infile",
        "client_flag",
        "max_allowed_packet",
        "bind_address",
        "program_name",
        "conv",
        "use_unicode",
        "binary_prefix",
        "auth_plugin_map",
        "server_public_key",
    }
)
_NOT_HERE: Final = {
    "host": "servers come from the group's configuration",
    "port": "servers come from the group's configuration",
    "unix_socket": "servers come from the group's configuration (key 'socket')",
    "db": "use database=",
    "passwd": "use password=",
}

CursorClass = type[pymysql.cursors.Cursor]


def connect(
    group: str,
    *,
    config: str | os.PathLike[str] | Config | None = None,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
    autocommit: bool = True,
    cursorclass: CursorClass = pymysql.cursors.Cursor,
    **connect_kwargs: Any,
) -> Connection:
    """Open a facade connection to the servers of *group*.

    The configuration comes from *config* (a path or a loaded Config), else $MSPLUGIN_CONFIG,
    else ./msplugin.json. *user*, *password*, *database* and *connect_kwargs* (PyMySQL
    connect() options) are the defaults for every server; per-server keys override them.
    Nothing is connected yet when ``lazy_connections`` is true (the default).
    """
    for key in connect_kwargs:
        if key in _NOT_HERE:
            raise TypeError(f"connect() does not take {key}=: {_NOT_HERE[key]}")
        if key not in PASSTHROUGH_KWARGS:
            raise TypeError(f"connect() got an unexpected keyword argument {key!r}")
    cfg = config if isinstance(config, Config) else load_config(config)
    conn = Connection(
        cfg.group(group),
        user=user,
        password=password,
        database=database,
        autocommit=autocommit,
        cursorclass=cursorclass,
        connect_kwargs=connect_kwargs,
    )
    if not conn.group.lazy_connections:
        conn._connect_all()
    return conn


def _check_supported(group: GroupConfig) -> None:
    """Refuse settings this version parses but cannot honour, instead of ignoring them."""
    problems = []
    if group.session_state == "sync":
        problems.append("session_state 'sync' (use 'off' or 'warn')")
    if group.global_transaction_id_injection is not None:
        problems.append("global_transaction_id_injection")
    for f in group.filters:
        if f.name in ("user_multi", "node_groups"):
            problems.append(f"filter {f.name!r}")
        if f.name == "quality_of_service" and (
            f.qos_level == "session" or (f.qos_level == "eventual" and f.qos_age is not None)
        ):
            problems.append(f"quality_of_service {f.qos_level} consistency")
    if problems:
        raise NotSupportedError(
            f"group {group.name!r}: accepted in the configuration but not implemented in this "
            f"version of msplugin: {', '.join(problems)}"
        )


class Connection:
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
    ) -> None:
        _check_supported(group)
        self.group = group
        self._picker = make_picker(group.filters)
        self._classifier = group.classifier
        strong = any(
            f.name == "quality_of_service" and f.qos_level == "strong" for f in group.filters
        )
        self._policy = Policy(
            trx_stickiness=group.trx_stickiness,
            master_on_write=group.master_on_write,
            strong_consistency=strong,
            has_slaves=bool(group.slaves),
        )
        self._masters = [Backend(s) for s in group.masters]
        self._slaves = [Backend(s) for s in group.slaves]
        self._by_name = {b.name: b for b in self._masters + self._slaves}
        self._slave_names = tuple(b.name for b in self._slaves)
        self._failed: set[str] = set()
        self._defaults: dict[str, Any] = {"autocommit": autocommit, **connect_kwargs}
        if group.server_charset is not None and "charset" not in connect_kwargs:
            self._defaults["charset"] = group.server_charset
        for key, value in (("user", user), ("password", password), ("database", database)):
            if value is not None:
                self._defaults[key] = value
        # API-level state that overrides per-server keys on every backend (select_db etc.).
        self._overrides: dict[str, Any] = {"autocommit": autocommit}
        self._autocommit = autocommit
        self._cursorclass = cursorclass
        self._master_backend: Backend | None = None
        self._last_used: Backend | None = None
        self._wrote = False
        self._closed = False
        self._stats = Stats()
        logger.info("facade connection for group %r (%s)", group.name, self._topology())

    def _topology(self) -> str:
        return ", ".join(
            f"{b.name}={b.server.host}:{b.server.port or 3306}" for b in self._by_name.values()
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        opened = [b.name for b in self._by_name.values() if b.conn is not None]
        last = self._last_used.name if self._last_used else None
        return (
            f"<msplugin.Connection group={self.group.name!r} {state} "
            f"connected={opened} last_used={last} autocommit={self._autocommit}>"
        )

    # ---------------------------------------------------------------- routing (per statement)

    def _route(self, query: str) -> Backend:
        """Choose and, if needed, connect the backend for *query*; nothing is sent here."""
        if self._closed:
            raise err.InterfaceError(0, "connection is closed")
        c = classify(query, self._classifier)
        d = self._decide(c)
        last = self._last_used
        target = d.target
        if target is Target.SLAVE:
            backend = self._slave(d)
        elif target is Target.MASTER:
            backend = self._master()
        elif last is None:
            raise RoutingError(
                f"{c.reason}: no statement has run on this connection yet, so there is no last "
                "used server; nothing was sent"
            )
        else:
            backend = last
        counts = self._stats.counts
        counts[d.stat] += 1
        if backend.role == "master":
            counts["use_master"] += 1
            self._wrote = True
        else:
            counts["use_slave"] += 1
        if not self._autocommit:
            backend.dirty = True
        self._last_used = backend
        if route_logger.isEnabledFor(logging.DEBUG):
            route_logger.debug("%s -> %s: %s", _cut(query), backend.name, d.reason)
        return backend

    def _decide(self, c: Classification) -> Decision:
        """The routing decision for *c* in this connection's current state (cached)."""
        master = self._master_backend
        return decide(
            c,
            self._policy,
            in_transaction=not self._autocommit or (master is not None and master.in_transaction),
            wrote=self._wrote,
            has_last_used=self._last_used is not None,
        )

    def _master(self, *, lazy: bool = True) -> Backend:
        backend = self._master_backend
        if backend is not None and backend.conn is not None:
            return backend
        errors = []
        # Several masters (multi_master): the first that answers takes the writes and keeps
        # them, as MySQL Router's read-write mode; never load-balanced per statement.
        for candidate in self._masters:
            try:
                self._open(candidate, lazy=lazy)
            except err.OperationalError as exc:
                errors.append(f"{candidate.info}: {exc.args[-1]}")
                continue
            self._master_backend = candidate
            return candidate
        raise NoBackendAvailable(
            f"group {self.group.name!r}: no master could be connected; nothing was executed: "
            + "; ".join(errors)
        )

    def _slave(self, d: Decision) -> Backend:
        candidates = self._slave_names
        if self._failed:
            candidates = tuple(n for n in candidates if n not in self._failed) or candidates
        backend = self._by_name[self._picker.pick(candidates)]
        if backend.conn is not None:
            return backend
        failover = self.group.failover
        tried: list[str] = []
        while True:
            try:
                self._open(backend, lazy=True)
                return backend
            except err.OperationalError as exc:
                tried.append(backend.name)
                if failover.remember_failed:
                    self._failed.add(backend.name)
                if failover.strategy == "disabled":
                    raise
                limit = failover.max_retries
                left = tuple(n for n in candidates if n not in tried)
                if failover.strategy == "master" or not left or (limit and len(tried) >= limit):
                    logger.warning(
                        "group %r: cannot connect to %s (%s); failing over to the master",
                        self.group.name,
                        backend.info,
                        exc.args[-1],
                    )
                    self._stats.counts["use_master_failover"] += 1
                    return self._master()
                backend = self._by_name[self._picker.pick(left)]
                logger.warning(
                    "group %r: cannot connect to %s (%s); trying %s",
                    self.group.name,
                    self._by_name[tried[-1]].info,
                    exc.args[-1],
                    backend.name,
                )

    def _open(self, backend: Backend, *, lazy: bool) -> None:
        kind = "lazy" if lazy else "non_lazy"
        try:
            backend.connect(self._defaults, self._overrides)
        except err.OperationalError:
            self._stats.counts[f"{kind}_connections_{backend.role}_failure"] += 1
            raise
        self._stats.counts[f"{kind}_connections_{backend.role}_success"] += 1

    def _connect_all(self) -> None:
        """lazy_connections false: connect the master and every slave now."""
        try:
            self._master(lazy=False)
        except NoBackendAvailable:
            self.close()
            raise
        for backend in self._slaves:
            try:
                self._open(backend, lazy=False)
            except err.OperationalError as exc:
                logger.warning(
                    "group %r: cannot connect to %s (%s)",
                    self.group.name,
                    backend.info,
                    exc.args[-1],
                )

    def _open_backends(self) -> list[Backend]:
        return [b for b in self._by_name.values() if b.conn is not None]

    # ---------------------------------------------------------------- PEP 249 and PyMySQL API

    def cursor(self, cursorclass: CursorClass | None = None) -> Cursor:
        """Return a new Cursor (PEP 249); *cursorclass* is a PyMySQL cursor class."""
        if self._closed:
            raise err.InterfaceError(0, "connection is closed")
        return Cursor(self, cursorclass or self._cursorclass)

    def commit(self) -> None:
        """Commit on every backend with an open transaction (PEP 249 .commit())."""
        for b in self._open_backends():
            if b.dirty or b.in_transaction:
                assert b.conn is not None
                b.conn.commit()
                b.dirty = False

    def rollback(self) -> None:
        """Roll back on every backend with an open transaction (PEP 249 .rollback())."""
        for b in self._open_backends():
            if b.dirty or b.in_transaction:
                assert b.conn is not None
                b.conn.rollback()
                b.dirty = False

    def begin(self) -> None:
        """Start a transaction on the master; statements stay there until commit or rollback."""
        backend = self._master()
        assert backend.conn is not None
        backend.conn.begin()
        self._last_used = backend

    def close(self) -> None:
        """Close every backend connection (PEP 249 .close()); a second close raises Error."""
        if self._closed:
            raise err.Error("Already closed")
        self._closed = True
        for b in self._by_name.values():
            b.close()
        logger.info("facade connection for group %r closed", self.group.name)

    @property
    def open(self) -> bool:
        """True until close()."""
        return not self._closed

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._closed:
            self.close()

    def autocommit(self, value: bool) -> None:
        """Set autocommit on every open backend and on those opened later."""
        value = bool(value)
        for b in self._open_backends():
            assert b.conn is not None
            b.conn.autocommit(value)
        self._autocommit = value
        self._overrides["autocommit"] = value
        self._stats.counts["trx_autocommit_on" if value else "trx_autocommit_off"] += 1

    def get_autocommit(self) -> bool:
        return self._autocommit

    def select_db(self, db: str) -> None:
        """Make *db* the current database on every open backend and on those opened later."""
        for b in self._open_backends():
            assert b.conn is not None
            b.conn.select_db(db)
        self._overrides["database"] = db

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        """Set the connection character set on every open backend and on those opened later."""
        for b in self._open_backends():
            assert b.conn is not None
            b.conn.set_character_set(charset, collation)
        self._overrides["charset"] = charset
        if collation is not None:
            self._overrides["collation"] = collation

    def ping(self, reconnect: bool = True) -> None:
        """Check every open backend (reconnecting if asked); with none open, connect the master."""
        backends = self._open_backends()
        if not backends:
            self._master()
            return
        for b in backends:
            assert b.conn is not None
            if reconnect:
                b.conn.ping(True)
            else:
                b.conn.ping(False)

    def insert_id(self) -> int:
        """The last insert id of the backend that ran the previous statement (0 before any)."""
        last = self._last_used
        if last is None or last.conn is None:
            return 0
        return int(last.conn.insert_id())  # type: ignore[no-untyped-call]

    @property
    def last_used(self) -> ServerInfo | None:
        """The server that ran the previous statement; None before the first."""
        return self._last_used.info if self._last_used is not None else None

    def explain(self, sql: str) -> Explanation:
        """Return where *sql* would run and why; nothing is executed or connected."""
        c = classify(sql, self._classifier)
        d = self._decide(c)
        master = self._master_backend
        last = self._last_used
        if d.target is Target.MASTER:
            name = (master or self._masters[0]).name
            return Explanation(c.route, "master", name, d.reason)
        if d.target is Target.LAST_USED:
            if last is None:
                return Explanation(
                    c.route, "last_used", None, f"{d.reason}; would fail: nothing ran yet"
                )
            return Explanation(c.route, last.role, last.name, d.reason)
        return Explanation(c.route, "slave", self._picker.peek(self._slave_names), d.reason)

    def stats(self) -> dict[str, int]:
        """This connection's counters (see msplugin.get_stats() for the process)."""
        return self._stats.snapshot()


def _cut(query: str) -> str:
    return query if len(query) <= 200 else query[:200] + "..."


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
        self.arraysize = 1

    def __repr__(self) -> str:
        return f"<msplugin.Cursor {self._cursorclass.__name__} on {self.connection!r}>"

    def _cursor_for(self, backend: Backend) -> pymysql.cursors.Cursor:
        if self._closed:
            raise err.ProgrammingError("cursor is closed")
        cur = self._cursors.get(backend.name)
        if cur is None or cur.connection is not backend.conn:
            assert backend.conn is not None
            cur = backend.conn.cursor(self._cursorclass)
            cur.arraysize = self.arraysize
            self._cursors[backend.name] = cur
        return cur

    def execute(self, query: str, args: Any = None) -> int:
        """Route *query* and execute it there (PEP 249 .execute()); return the affected rows."""
        cur = self._cursor_for(self.connection._route(query))
        self._current = cur
        return cur.execute(query, args)

    def executemany(self, query: str, args: Sequence[Any]) -> int | None:
        """Route *query* once and run it for every item of *args* on that backend."""
        cur = self._cursor_for(self.connection._route(query))
        self._current = cur
        return cur.executemany(query, args)

    def callproc(self, procname: str, args: Sequence[Any] = ()) -> Any:
        """Call a stored procedure on the master (PEP 249 .callproc())."""
        cur = self._cursor_for(self.connection._route("CALL"))
        self._current = cur
        return cur.callproc(procname, args)

    def _result(self) -> pymysql.cursors.Cursor:
        cur = self._current
        if cur is None:
            raise err.ProgrammingError("execute() first")
        return cur

    def fetchone(self) -> Any:
        return self._result().fetchone()

    def fetchmany(self, size: int | None = None) -> Any:
        return self._result().fetchmany(size)

    def fetchall(self) -> Any:
        return self._result().fetchall()

    def nextset(self) -> bool | None:
        return self._result().nextset()

    def scroll(self, value: int, mode: str = "relative") -> None:
        self._result().scroll(value, mode)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchone, None)

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

    def setinputsizes(self, *args: Any) -> None:
        """Does nothing (PEP 249 allows it)."""

    def setoutputsizes(self, *args: Any) -> None:
        """Does nothing (PEP 249 allows it)."""

    def close(self) -> None:
        """Close the backend cursors; the cursor cannot be used afterwards."""
        for cur in self._cursors.values():
            cur.close()
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
