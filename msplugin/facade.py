"""What the sync and the async facade connections share: their state, their checks, and the
flows of their API calls, written once over the edge's port (msplugin.port).

A facade (msplugin.connection.Connection, msplugin.aio.Connection) subclasses
``FacadeBase`` and adds only how it runs a flow: to completion at once (sync), or awaited
(async). The API's rules (what set_qos() accepts, what autocommit(True) says of a lost
transaction, which settings later sessions get) live here.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, Self

import pymysql
from pymysql import err
from pymysql.charset import charset_by_name
from pymysql.constants import CLIENT, SERVER_STATUS
from pymysql.converters import escape_item, escape_string

from msplugin import health, sessions, statement, topology_monitor
from msplugin._types import Level
from msplugin.backends import ServerInfo, isolation_sql
from msplugin.config import Config, GroupConfig, load_config
from msplugin.consistency import is_valid_gtid
from msplugin.errors import NoBackendAvailable, TransactionError
from msplugin.explain import explain
from msplugin.filters import UserCallback, load_callback
from msplugin.options import sort_options
from msplugin.port import FacadeCursor, Flow, Port
from msplugin.router import Router
from msplugin.routing import NO_TRANSACTION, OPEN, Explanation
from msplugin.state import MODES, Tracker

__all__ = ["FacadeBase", "in_use_error"]

logger = logging.getLogger("msplugin.connection")

_ISOLATION_LEVELS: Final = ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")
_AUTOCOMMIT: Final = SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
_NO_BACKSLASH_ESCAPES: Final = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES


def in_use_error() -> err.ProgrammingError:
    """The error for a call on a connection another thread (or task) is using."""
    return err.ProgrammingError(
        "this msplugin connection is in use by another thread or task (or was re-entered "
        "from a callback): a connection serves one at a time (PEP 249 threadsafety 1); give "
        "each thread or task its own connection, or a pool. Nothing was sent"
    )


class FacadeBase:
    """A facade connection's state over a group of servers (see the module)."""

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

    _kind: ClassVar[str] = "msplugin.Connection"  # what repr() calls it

    def __init__(
        self,
        group: GroupConfig,
        *,
        user: str | None,
        password: str | None,
        database: str | None,
        autocommit: bool,
        cursorclass: Any,
        connect_kwargs: Mapping[str, Any],
        port: Port,
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
            port=port,
        )
        self._core = self._router.core
        self._backends = self._router.backends
        self._stats = self._router.stats
        self._cursorclass = cursorclass
        # Set while a thread (or task) is inside a call that talks to a server.
        self._busy = False
        conv: dict[Any, Any] = connect_kwargs.get("conv") or pymysql.converters.conversions
        self._encoders: dict[Any, Any] = {k: v for k, v in conv.items() if type(k) is not int}
        logger.info("facade connection for group %r (%s)", group.name, self._topology())

    @classmethod
    def _create(
        cls,
        group: str,
        config: str | os.PathLike[str] | Config | None,
        identity: dict[str, str | None],
        connect_kwargs: dict[str, Any],
        *,
        port: Port,
        autocommit: bool,
        cursorclass: Any,
        pick_server: UserCallback | str | None,
        connect_factory: Callable[..., Any] | None = None,
    ) -> tuple[Self, bool]:
        """A facade of this class from connect()'s arguments (see msplugin.connect()), and
        whether every server is to be connected now (``_opened()`` does it)."""
        opts = sort_options(identity, connect_kwargs)
        cfg = config if isinstance(config, Config) else load_config(config)
        conn = cls(
            cfg.group(group),
            port=port,
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
        return conn, not conn.group.lazy_connections and not opts.defer_connect

    async def _opened(self, connect_now: bool) -> None:
        """Start what the group needs once the facade exists: the replica monitor (waiting
        for its first statuses when an age limit needs them), and with *connect_now*
        (lazy_connections false) every server."""
        group = self.group
        if group.topology.discover or group.cluster == "galera":
            await self._router.port.blocking(self._follow_topology)
        policy = self._core.policy
        replication = self._core.cluster != "galera"  # a Galera node has no replica status
        if replication and (policy.age is not None or group.replica_stopped_limit is not None):
            wait = policy.age is not None
            await self._router.port.blocking(lambda: self._backends.watch_replicas(wait=wait))
        if connect_now:
            await self._connect_all()

    def _follow_topology(self) -> None:
        """topology.discover: the process's watch of the group (its first check done by the
        first connection), followed by this one (blocking: run in a thread on a loop)."""
        backends = self._backends
        user = str(backends.defaults.get("user") or "")
        watch = topology_monitor.watch(
            self.group, user, lambda name: backends.probe_params(backends.by_name[name])
        )
        self._router.use_topology(watch)

    async def _connect_all(self) -> None:
        """lazy_connections false: connect the master and every slave now."""
        try:
            await self._backends.connect_all()
        except NoBackendAvailable:
            self._close_backends()
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
            f"<{self._kind} group={self.group.name!r} {state} "
            f"connected={opened} last_used={core.last_used} autocommit={core.autocommit}>"
        )

    def _check_open(self) -> None:
        if self._core.closed:
            raise err.InterfaceError(0, "connection is closed")

    def _enter(self) -> None:
        """Mark the connection busy; raise at once if another thread or task is inside.

        The test and the set are two attribute operations with no call between them: CPython
        (with its GIL) switches threads only at calls and backward jumps, so of two threads
        exactly one finds the flag clear; a task switches only at an await. Cheaper than a
        lock on the statement path (see bench/guard_cost.py).
        """
        if self._busy:
            raise in_use_error()
        self._busy = True

    def _leave(self) -> None:
        self._busy = False

    def _entered(self, flow: Flow[Any]) -> None:
        """_enter() for *flow*, which is closed unrun if the connection is busy."""
        if self._busy:
            flow.close()
            raise in_use_error()
        self._busy = True

    # ---------------------------------------------------------------- flows of the API

    async def _begin(self, cursor: FacadeCursor, read_only: bool) -> None:
        sql = "START TRANSACTION READ ONLY" if read_only else "BEGIN"
        await statement.routed(cursor, sql, None)

    async def _set_qos(self, level: str, age: int | None, gtid: str | None) -> None:
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
        backends = self._backends
        if level == Level.SESSION and not core.track_gtids:
            core.track_gtids = True
            master = backends.master_backend
            if master is not None and master.conn is not None:
                await backends.setup_tracking(master, gtids=True, state=False)
        if age is not None:
            await self._router.port.blocking(lambda: backends.watch_replicas(wait=True))

    async def _set_session_state(self, mode: str) -> None:
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
            await self._backends.setup_tracking(b, gtids=False, state=True)

    async def _autocommit(self, value: bool) -> None:
        value = bool(value)
        await sessions.broadcast(self._router, "autocommit", value)
        self._overrides["autocommit"] = value
        pinned = self._router.pinned
        self._core.set_autocommit(value)
        if value and pinned is not None and pinned.conn is None:
            raise err.OperationalError(
                health.CR_SERVER_LOST,
                f"autocommit(True): {pinned.info}: the transaction open there was lost "
                "with its connection and did not commit",
            )

    async def _select_db(self, db: str) -> None:
        await sessions.broadcast(self._router, "select_db", db)
        self._overrides["database"] = db
        self._forget_setting("database")

    async def _set_character_set(self, charset: str, collation: str | None) -> None:
        await sessions.broadcast(self._router, "set_character_set", charset, collation)
        self._overrides["charset"] = charset
        if collation is not None:
            self._overrides["collation"] = collation
        self._forget_setting("charset")

    def _forget_setting(self, key: str) -> None:
        """The API set *key* on every backend: no statement of the application's needs
        replaying for it any more."""
        tracker = self._core.tracker
        if tracker is not None:
            tracker.forget(key)
            self._core.moved()

    async def _set_isolation_level(self, level: str) -> None:
        name = " ".join(level.upper().replace("-", " ").split())
        if name not in _ISOLATION_LEVELS:
            raise err.ProgrammingError(
                f"isolation level {level!r}: expected one of {', '.join(_ISOLATION_LEVELS)}"
            )
        await sessions.broadcast(self._router, "query", isolation_sql(name))
        self._backends.isolation = name

    async def _init_sessions(self, sql: str) -> None:
        if self._core.trx_context() == OPEN:
            raise TransactionError(
                "init_sessions() inside a transaction: commit or roll back first"
            )
        await sessions.broadcast(self._router, "query", sql)
        self._backends.init_sql.append(sql)

    def _close_backends(self) -> None:
        """Close every backend connection (an open transaction is rolled back by the pool's
        reset, or by the server when the connection closes)."""
        core = self._core
        core.closed = True
        core.ended()
        for b in self._backends.by_name.values():
            b.close()
        logger.info("facade connection for group %r closed", self.group.name)

    # ---------------------------------------------------------------- no I/O

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

    def get_autocommit(self) -> bool:
        """Whether autocommit is on: the master's session says so once it ran a statement
        (``SET autocommit=...`` sent as SQL included), else what autocommit() set."""
        master = self._backends.master_backend
        if master is not None and master.conn is not None:
            return bool(master.status & _AUTOCOMMIT)
        return self._core.autocommit

    @property
    def encoding(self) -> str:
        """The Python codec of the connection character set."""
        return str(charset_by_name(self.character_set_name()).encoding)

    @property
    def encoders(self) -> dict[Any, Any]:
        """PyMySQL's escaping table (type -> function) used by escape() and mogrify()."""
        return self._encoders

    def escape(self, obj: Any, mapping: Mapping[Any, Any] | None = None) -> str:
        """Escape *obj* as an SQL literal, as PyMySQL's Connection.escape() does, for the
        master's session (its NO_BACKSLASH_ESCAPES mode) once it is connected."""
        if isinstance(obj, str):
            return f"'{self.escape_string(obj)}'"
        if isinstance(obj, bytes | bytearray):
            return f"X'{obj.hex()}'"
        if type(obj) in (tuple, list, set, frozenset):
            return "(" + ",".join([self.escape(item, mapping) for item in obj]) + ")"
        return str(escape_item(obj, self.encoding, mapping=mapping or self._encoders))

    def escape_string(self, s: str) -> str:
        """Escape the text of a string literal (without its quotes)."""
        master = self._backends.master_backend
        if master is not None and master.status & _NO_BACKSLASH_ESCAPES:
            return s.replace("'", "''")
        return str(escape_string(s))

    def literal(self, obj: Any) -> str:
        """Deprecated PyMySQL alias of escape()."""
        warnings.warn(
            "literal() is deprecated and will be removed in the next version.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.escape(obj)

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
