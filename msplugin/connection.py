"""The facade Connection and Cursor (PEP 249): route each statement to a backend and run it there.

This is the only module that does statement I/O. The per-statement path is
``Cursor.execute -> Connection._route`` (classify: cached; decide: cached; pick a backend)
``-> PyMySQL cursor.execute``; everything else is bookkeeping done off that path.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

import pymysql
import pymysql.cursors
from pymysql import err
from pymysql.constants import CLIENT, SERVER_STATUS

from msplugin import health
from msplugin.backends import Backend, ServerInfo
from msplugin.classify import CACHE_MAX_LEN, Classification, classify
from msplugin.config import Config, GroupConfig, load_config
from msplugin.consistency import (
    SESSION_STATE_CHANGED,
    TRACK_SCHEMA,
    TRACK_STATE_CHANGE,
    TRACK_SYSTEM_VARIABLES,
    GtidState,
    gtid_from_session_state,
    gtid_tracking,
    is_valid_gtid,
    schema_name,
    session_state_items,
    system_variable,
    wait_sql,
)
from msplugin.errors import (
    NoBackendAvailable,
    PoolTimeout,
    RoutingError,
    StateDivergenceWarning,
    TransactionError,
)
from msplugin.filters import (
    RandomPicker,
    UserCallback,
    UserPicker,
    load_callback,
    make_narrower,
    make_picker,
    record_latency,
)
from msplugin.health import down as _down
from msplugin.monitor import monitor
from msplugin.pool import discard_idle
from msplugin.retry import after_disconnect, after_server_error
from msplugin.routing import (
    AUTOCOMMIT_OFF,
    NO_TRANSACTION,
    OPEN,
    Decision,
    Explanation,
    Policy,
    Target,
    decide,
)
from msplugin.state import MODES, NOTHING, Effects, Tracker, effects
from msplugin.stats import Stats

__all__ = ["Connection", "Cursor", "connect"]

logger = logging.getLogger("msplugin.connection")
route_logger = logging.getLogger("msplugin.routing")
# What isEnabledFor() answered per level, which logging empties when any level changes
# (Logger.setLevel, logging.disable): the fast lane logs nothing, so it runs only while this
# says DEBUG is off, and an empty cache sends reads through _route, which asks again. Only
# debug() is called on this logger, so DEBUG is its one entry.
_route_levels: dict[int, bool] = getattr(route_logger, "_cache", {})
_ROUTE_LOG_OFF: Final = {logging.DEBUG: False}  # a dict comparison costs less than a call
state_logger = logging.getLogger("msplugin.state")

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
_T = TypeVar("_T")

_ISOLATION_LEVELS: Final = ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")
_PLANS_MAX: Final = 1024
_IN_TRANS: Final = SERVER_STATUS.SERVER_STATUS_IN_TRANS
_AUTOCOMMIT: Final = SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
# A fast-lane read whose reply has any flag but autocommit of these takes _after's full path.
_LANE_STATUS: Final = _IN_TRANS | _AUTOCOMMIT | SESSION_STATE_CHANGED


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
    **connect_kwargs: Any,
) -> Connection:
    """Open a facade connection to the servers of *group*.

    The configuration comes from *config* (a path or a loaded Config), else $MSPLUGIN_CONFIG,
    else ./msplugin.json. *user*, *password*, *database* and *connect_kwargs* (PyMySQL
    connect() options) are the defaults for every server; per-server keys override them.
    *pick_server* is the ``user`` filter's callback (a callable or "module:function"), when
    the configuration does not name one. Nothing is connected yet when ``lazy_connections``
    is true (the default).
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
        pick_server=(
            load_callback(pick_server, "connect(pick_server=)")
            if isinstance(pick_server, str)
            else pick_server
        ),
    )
    if not conn.group.lazy_connections:
        conn._connect_all()
    return conn


def _configured_qos(group: GroupConfig) -> tuple[str, int | None]:
    for f in group.filters:
        if f.name == "quality_of_service" and f.qos_level is not None:
            return f.qos_level, f.qos_age
    if group.global_transaction_id_injection is not None:
        return "session", None  # mysqlnd_ms configs set this up for read-your-writes
    return "eventual", None


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
        pick_server: UserCallback | None = None,
    ) -> None:
        self.group = group
        self._masters = [Backend(s) for s in group.masters]
        self._slaves = [Backend(s) for s in group.slaves]
        self._by_name = {b.name: b for b in self._masters + self._slaves}
        where = f"group {group.name!r}"
        self._picker = make_picker(
            group.filters,
            {b.name: b.address for b in self._by_name.values()},
            [b.name for b in self._masters],
            where,
            pick_server,
        )
        # user, user_multi and node_groups see each statement: they get its context.
        self._user = self._picker if isinstance(self._picker, UserPicker) else None
        self._narrower = make_narrower(group.filters, where)
        self._custom = self._user is not None or self._narrower is not None
        self._allowed: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._master_names = tuple(b.name for b in self._masters)
        self._timed = group.load_balancer.name == "fastest_response"
        self._classifier = group.classifier
        qos, age = _configured_qos(group)
        self._policy = Policy(
            trx_stickiness=group.trx_stickiness,
            master_on_write=group.master_on_write,
            qos=qos,
            age=age,
            has_slaves=bool(group.slaves),
        )
        self._sticky = group.trx_stickiness != "disabled"
        # (text, transaction context, wrote, has last used) -> (classification, decision,
        # the session state the text sets or depends on)
        self._plans: dict[
            tuple[str, str, bool, bool], tuple[Classification, Decision, Effects, bool]
        ] = {}
        # The fast lane (Cursor.execute): text -> (classification, statistic) of the reads that
        # go to a slave with nothing but a pick to decide, valid while the connection is quiet
        # (see _lane_update) and emptied as soon as that may no longer hold.
        self._lane: dict[str, tuple[Classification, str]] = {}
        self._lane_able = not self._custom and not self._timed
        self._lane_open = False
        self._lane_sig = False
        self._fixed_slave: Backend | None = None  # random once: the slave every read goes to
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
        self._isolation: str | None = None  # set_isolation_level(): applied to every backend
        self._cursorclass = cursorclass
        self._master_backend: Backend | None = None
        self._last_used: Backend | None = None
        self._wrote = False
        self._closed = False
        self._stats = Stats()
        # Transactions: the backend that holds the open one, and an XA transaction in flight.
        self._pinned: Backend | None = None
        self._xa = False
        # Read-your-writes: the GTID to wait for, and the statement of the current read that
        # checks a replica has it (set by _route, consumed by the cursor).
        self._gtid = GtidState()
        self._injection = group.global_transaction_id_injection
        # Native GTID tracking, unless a ported mysqlnd_ms config fetches GTIDs with its own SQL.
        self._track_gtids = qos == "session" and not (
            self._injection is not None and self._injection.fetch_last_gtid
        )
        self._session_configured = qos == "session"
        self._check: str | None = None
        self._c: Classification | None = None
        self._user_multi = bool(int(connect_kwargs.get("client_flag", 0)) & CLIENT.MULTI_STATEMENTS)
        # Session state of each backend (session_state warn/sync); None when off.
        self._state: Tracker | None = None
        self._eff: Effects | None = None
        if group.session_state != "off":
            self._state = Tracker(group.session_state, tuple(self._by_name))
        if age is not None:
            self._watch_replicas()
        self._lane_update()
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

    def _route(self, query: str, picked: Backend | None = None) -> Backend:
        """Choose and, if needed, connect the backend for *query*; nothing is sent here.

        Leaves the classification in ``_c`` and, for a session-consistent read on a replica
        not known to have this connection's writes, the check statement in ``_check``.
        *picked*: the slave the fast lane picked for a plain read but found unconnected.
        """
        if self._closed:
            raise err.InterfaceError(0, "connection is closed")
        # The classification and decision depend only on the text and on this connection's
        # state in the key, so the repeated statements of an application cost one lookup.
        key = (query, self._trx_context(), self._wrote, self._last_used is not None)
        plan = self._plans.get(key)
        if plan is None:
            c = classify(query, self._classifier)
            d = decide(c, self._policy, key[1], key[2], key[3])
            eff = effects(query)
            lane = (
                d.target is Target.SLAVE
                and d.consistency == "eventual"
                and eff is NOTHING
                and c.read
                and not c.trx
                and c.statements == 1
            )
            plan = (c, d, eff, lane)
            if len(query) <= CACHE_MAX_LEN:
                if len(self._plans) >= _PLANS_MAX:
                    self._plans.clear()  # literals in the text: cheaper than an LRU
                self._plans[key] = plan
        c, d, eff, lane = plan
        self._c = c
        self._check = None
        target = d.target
        reason = d.reason
        stat = d.stat
        if self._custom:
            self._filter_context(query, target)
        if target is Target.SLAVE:
            if self._policy.age is not None or self._failed or health.down or self._allowed:
                backend, reason = self._read_backend(d, c)
            elif d.consistency == "eventual":
                backend = self._slave(self._slave_names, picked)  # the common read
            elif c.read:  # session, nothing to filter
                backend, reason = self._session_backend(d, self._slave_names)
            else:
                backend, reason = self._read_backend(d, c)
        elif target is Target.MASTER:
            backend = self._master() if self._allowed is None else self._allowed_master()
        elif target is Target.TRANSACTION:
            backend = self._pinned  # type: ignore[assignment]
            if backend.conn is None:
                raise err.OperationalError(
                    health.CR_SERVER_GONE_ERROR,
                    f"the transaction open on {backend.info} was lost with its connection; "
                    "roll back and start again; nothing was sent",
                )
            if backend.role == "slave":
                reason = "read-only transaction open on this slave"
                stat = "use_slave_trx"
        elif self._last_used is None:
            raise RoutingError(
                f"{c.reason}: no statement has run on this connection yet, so there is no last "
                "used server; nothing was sent"
            )
        else:
            backend = self._last_used
            if backend.conn is None:
                # Lost, or given back to its pool while a failed statement waited for another
                # pool: a new session would silently answer FOUND_ROWS() and the like wrongly.
                raise err.OperationalError(
                    health.CR_SERVER_GONE_ERROR,
                    f"{c.reason}: the session on the last used server {backend.info} is gone "
                    "(its connection was lost or returned to the pool); nothing was sent",
                )
        tracker = self._state
        if tracker is not None:
            self._eff = eff
            if eff is not NOTHING or not tracker.idle(backend.name, query):
                backend, reason = self._apply_state(query, c, backend, reason, target, eff)
        if c.statements > 1 and backend.multi_statements and not self._user_multi:
            # msplugin enabled multi-statements on this replica for its GTID checks; the
            # application did not, so its own multi-statement strings stay refused.
            raise err.ProgrammingError(
                "multi-statement strings need client_flag=CLIENT.MULTI_STATEMENTS in connect(); "
                "nothing was sent"
            )
        counts = self._stats.counts
        counts[stat] += 1
        if backend.role == "master":
            counts["use_master"] += 1
            self._wrote = True
        else:
            counts["use_slave"] += 1
        if not self._autocommit:
            backend.dirty = True
        self._last_used = backend
        if route_logger.isEnabledFor(logging.DEBUG):
            route_logger.debug("%s -> %s: %s", _cut(query), backend.name, reason)
        if lane and self._lane_open and backend.role == "slave":
            if len(self._lane) >= _PLANS_MAX:
                self._lane.clear()
            self._lane[query] = (c, stat)
        return backend

    def _lane_update(self) -> None:
        """After a statement outside the fast lane: open the lane if nothing but the text
        decides where a read goes (no transaction, filter, lag limit, failed server or pending
        session state), and empty it if what its reads were decided under changed."""
        # The one part of decide()'s key that changes the route of a plain read outside a
        # transaction: master_on_write after a write sends it to the master.
        sig = self._wrote and self._policy.master_on_write
        quiet = (
            self._lane_able
            and not self._closed
            and self._policy.age is None
            and not self._failed
            and self._trx_context() == NO_TRANSACTION
            and (self._state is None or self._state.quiet())
        )
        if not quiet or sig != self._lane_sig:
            self._lane.clear()
        self._lane_sig = sig
        self._lane_open = quiet
        picker = self._picker
        chosen = picker.chosen if isinstance(picker, RandomPicker) else None
        self._fixed_slave = (
            self._by_name[chosen] if chosen is not None and chosen in self._slave_names else None
        )

    def _lane_close(self) -> None:
        """Something changed that _lane_update did not see: no fast lane until the next
        statement outside it."""
        self._lane.clear()
        self._lane_open = False
        self._fixed_slave = None

    def _filter_context(self, query: str, target: Target) -> None:
        """user, user_multi, node_groups: hand them the statement; narrow the candidates."""
        last = self._last_used.name if self._last_used is not None else None
        ctx = (self.group.name, query, last, self._trx_context() != NO_TRANSACTION)
        self._allowed = None
        if target is not Target.SLAVE and target is not Target.MASTER:
            return  # a transaction or a last_used hint holds the statement where it is
        masters, slaves = self._master_names, self._slave_names
        if self._narrower is not None:
            self._narrower.context = ctx
            masters, slaves = self._narrower.narrow(masters, slaves)
        if self._user is not None:
            self._user.context = ctx
            self._user.masters = masters
            if target is Target.MASTER:
                masters = (self._user.choose(masters, ()),)
        self._allowed = (masters, slaves)

    def _allowed_master(self) -> Backend:
        """The master when filters narrowed the masters to *self._allowed*."""
        assert self._allowed is not None
        only = self._allowed[0]
        if not only:
            raise RoutingError(
                f"group {self.group.name!r}: the filters left no master (and no slave, for a "
                "read) for this statement; nothing was sent"
            )
        return self._master(only=only)

    def _decide(self, c: Classification) -> Decision:
        """The routing decision for *c* in this connection's current state (cached)."""
        # Positional arguments: the cache key of decide() is built faster without keywords.
        return decide(
            c, self._policy, self._trx_context(), self._wrote, self._last_used is not None
        )

    def _trx_context(self) -> str:
        if self._pinned is not None:
            return OPEN
        if not self._autocommit:
            return AUTOCOMMIT_OFF
        master = self._master_backend
        # SET autocommit=0 sent as SQL: the master's session says so in every reply.
        if master is not None and master.conn is not None and not master.status & _AUTOCOMMIT:
            return AUTOCOMMIT_OFF
        return NO_TRANSACTION

    def _after(self, backend: Backend, cur: pymysql.cursors.Cursor | None = None) -> None:
        """Learn from the reply: is a transaction open there, did a write report its GTID,
        what session state does the backend hold now; then open or close the fast lane."""
        try:
            self._learn(backend, cur)
        except BaseException:
            self._lane_close()
            raise
        self._lane_update()

    def _learn(self, backend: Backend, cur: pymysql.cursors.Cursor | None) -> None:
        c = self._c
        assert c is not None
        status = backend.status
        tracker = self._state
        if tracker is not None:
            if self._eff is NOTHING and not status & SESSION_STATE_CHANGED and not c.trx:
                # The common statement: only where LAST_INSERT_ID()/FOUND_ROWS() live moves.
                if c.read:
                    tracker.found_rows_home = backend.name
                else:
                    tracker.last_insert_home = backend.name
            else:
                self._state_after(backend, c, status, cur)
        if self._sticky:
            if c.trx == "xa_begin":
                self._xa = True
            if c.trx in ("end", "xa_end"):
                self._pinned = None
                self._xa = False
            elif (
                self._xa
                or status & _IN_TRANS
                or (not status & _AUTOCOMMIT and backend.role == "master")
            ):
                self._pinned = backend
            elif self._pinned is backend:
                self._pinned = None  # ended by the server: implicit commit (DDL), procedure
        if backend.role == "master" and not c.read:
            committed = self._autocommit and not status & _IN_TRANS and not self._xa
            self._learn_gtid(backend, status, committed=committed or c.trx == "end", cur=cur)
        if status & SESSION_STATE_CHANGED:
            _consumed(backend)

    def _learn_gtid(
        self,
        backend: Backend,
        status: int,
        *,
        committed: bool,
        cur: pymysql.cursors.Cursor | None = None,
    ) -> None:
        gs = self._gtid
        gtid = None
        if self._track_gtids:
            reply = backend.conn._result if backend.conn is not None else None  # type: ignore[attr-defined]
            if reply is None:
                pass
            elif _gtid_unreadable(reply, cur):
                # Only the master surely has this write until a later write's GTID is known.
                gs.untracked()
                self._stats.counts["gtid_untracked"] += 1
            elif status & SESSION_STATE_CHANGED and reply.message is not None:
                # PyMySQL keeps the OK packet's tail, which holds the session-state block.
                # (message None: rows came back, and the status is from an older OK packet.)
                gtid = gtid_from_session_state(reply.message)
        elif self._injection is not None and self._injection.fetch_last_gtid and committed:
            gtid = self._run_injection(backend, self._injection.fetch_last_gtid, "gtid_fetch")
        if gtid:
            gs.require(gtid, time.monotonic())
            gs.last_write = gtid
            gs.untracked_write = False
            # Built now, with the reply to the write, rather than on the read that follows:
            # a read is where the application waits (replicas share the master's flavor).
            self._prepare_check(backend.flavor)
            self._stats.counts["gtid_tracked"] += 1
        elif not self._track_gtids:
            gs.untracked_write = True
        if self._injection is not None and self._injection.on_commit and committed:
            self._run_injection(backend, self._injection.on_commit, "gtid_on_commit")

    def _run_injection(self, backend: Backend, sql: str, stat: str) -> str | None:
        """Run a mysqlnd_ms global_transaction_id_injection statement; return its first value."""
        assert backend.conn is not None and self._injection is not None
        self._stats.counts[stat] += 1
        try:
            with backend.conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone() if cur.description else None
        except err.MySQLError as exc:
            if self._injection.report_error:
                raise
            logger.warning(
                "global_transaction_id_injection statement failed on %s: %s", backend.info, exc
            )
            return None
        return None if not row or row[0] is None else str(row[0])

    # ---------------------------------------------------------------- session state

    def _apply_state(
        self,
        query: str,
        c: Classification,
        backend: Backend,
        reason: str,
        target: Target,
        eff: Effects,
    ) -> tuple[Backend, str]:
        """Warn about, or in sync mode fix, state the statement depends on but *backend* lacks.
        Not called for the common statement, which touches no state and needs none."""
        tracker = self._state
        assert tracker is not None
        master = (self._master_backend or self._masters[0]).name
        plan = tracker.plan(
            query, eff, backend.name, read=c.read, fixed=_fixed_by(c, target), master=master
        )
        if not (plan.move_to or plan.warnings or plan.replay or plan.error):
            return backend, reason
        for message in plan.warnings:
            self._warn_state(query, message)
        if plan.error:
            raise RoutingError(f"{_cut(query)}: {plan.error}; nothing was sent")
        if plan.move_to:
            backend = self._backend_named(plan.move_to)
            reason = f"{reason}; {plan.reason}"
            self._stats.counts["state_moved"] += 1
            if backend.role == "master":
                self._check = None  # the master has every write: no GTID check
        if plan.replay:
            self._replay(backend, plan.replay)
        return backend, reason

    def _warn_state(self, query: str, message: str) -> None:
        text = f"{_cut(query)}: {message}"
        self._stats.counts["state_warnings"] += 1
        state_logger.warning("%s", text)
        # stacklevel 5: the application's execute() call (_warn_state, _apply_state, _route,
        # Cursor.execute, caller).
        warnings.warn(text, StateDivergenceWarning, stacklevel=5)

    def _backend_named(self, name: str) -> Backend:
        backend = self._by_name[name]
        if backend.role == "master":
            return self._master()
        if backend.conn is None:
            self._open(backend, lazy=True)
        return backend

    def _replay(self, backend: Backend, statements: tuple[str, ...]) -> None:
        """Sync: bring *backend*'s session settings up to the application's before it runs."""
        tracker = self._state
        assert tracker is not None and backend.conn is not None
        statement = ""
        try:
            with backend.conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        except err.MySQLError as exc:
            raise err.OperationalError(
                f"session_state sync: replaying {_cut(statement)!r} on {backend.name} failed "
                f"({exc.args[-1]}); the statement was not sent"
            ) from exc
        tracker.replayed(backend.name)
        self._stats.counts["state_replayed"] += len(statements)
        state_logger.debug("replayed %d session setting(s) on %s", len(statements), backend.name)

    def _state_after(
        self, backend: Backend, c: Classification, status: int, cur: pymysql.cursors.Cursor | None
    ) -> None:
        tracker = self._state
        eff = self._eff
        assert tracker is not None and eff is not None
        executed = ""
        if eff.setting and cur is not None:
            # The text PyMySQL sent, arguments interpolated: what a replay must send.
            executed = str(getattr(cur, "_executed", "") or "")
        tracker.record(eff, backend.name, read=c.read, executed=executed)
        if eff is not NOTHING:
            return  # the text explains what the server may report
        if status & SESSION_STATE_CHANGED and backend.conn is not None:
            # Only an OK packet carries the state block (a result set leaves the flag set).
            message = getattr(backend.conn._result, "message", None)  # type: ignore[attr-defined]
            if message:
                self._server_reported(backend, message)
        if c.trx in ("begin", "begin_ro", "xa_begin"):
            tracker.transaction_began(backend.name)

    def _server_reported(self, backend: Backend, message: bytes) -> None:
        """The server changed session state that the statement's text does not explain
        (a procedure, a trigger): record what it said."""
        assert self._state is not None
        schema: str | None = None
        variables: dict[str, str] = {}
        changed = False
        for kind, data in session_state_items(message):
            if kind == TRACK_SCHEMA:
                schema = schema_name(data)
            elif kind == TRACK_SYSTEM_VARIABLES:
                name, value = system_variable(data)
                if name != "last_gtid":
                    variables[name] = value
            elif kind == TRACK_STATE_CHANGE:
                changed = True
        if schema is None and not variables and not changed:
            return
        self._stats.counts["state_server_changes"] += 1
        state_logger.info(
            "%s: the server reported session state changes no statement text explains%s",
            backend.name,
            f" (database {schema})" if schema is not None else "",
        )
        self._state.server_reported(backend.name, schema=schema, variables=variables)

    # ---------------------------------------------------------------- choosing a replica

    def _read_backend(self, d: Decision, c: Classification) -> tuple[Backend, str]:
        """The backend for a read the decision sends to a slave, and the reason to log."""
        candidates = self._eligible(d)
        if not candidates:
            if self._policy.age is not None and d.consistency == "eventual":
                reason = f"{d.reason}; no replica within age {self._policy.age} s"
            elif self._allowed is not None and not self._allowed[1]:
                reason = f"{d.reason}; the filters left no slave"
            else:
                reason = f"{d.reason}; every replica is quarantined or failed"
            if self.group.failover.strategy == "disabled":
                raise NoBackendAvailable(
                    f"group {self.group.name!r}: {reason} and failover is disabled; nothing was sent"
                )
            self._stats.counts[
                "use_master_age" if self._policy.age is not None else "use_master_failover"
            ] += 1
            master = self._master() if self._allowed is None else self._allowed_master()
            return master, reason + ": the master serves it"
        if d.consistency != "session" or not c.read:
            return self._slave(candidates), d.reason
        return self._session_backend(d, candidates)

    def _eligible(self, d: Decision) -> tuple[str, ...]:
        candidates = self._healthy()
        if self._allowed is not None:
            allowed = self._allowed[1]
            candidates = tuple(n for n in candidates if n in allowed)
        age = self._policy.age
        if age is not None and d.consistency == "eventual":
            candidates = tuple(
                n
                for n in candidates
                if (st := monitor.status(self._monitor_key(self._by_name[n]))) and st.within(age)
            )
        return candidates

    def _session_backend(self, d: Decision, candidates: tuple[str, ...]) -> tuple[Backend, str]:
        gs = self._gtid
        counts = self._stats.counts
        if gs.gtid is None:
            if gs.untracked_write:
                counts["use_master_session"] += 1
                return (
                    self._master(),
                    f"{d.reason}; session: this connection wrote and its GTID is unknown",
                )
            return self._slave(candidates), f"{d.reason}; session: nothing written yet"
        gtid = gs.gtid
        backend = self._slave(candidates)  # the load balancer picks first, as for any read
        if backend.role == "master":
            return backend, d.reason
        known = gs.known
        if known:
            if backend.name not in known:
                # A replica known to have the GTID beats the balancer's pick until the next
                # write: a check costs a second result set on every read.
                name = next((n for n in candidates if n in known), None)
                if name is not None:
                    backend = self._slave((name,))
            if backend.name in known:
                counts["gtid_replica_known"] += 1
                return backend, f"{d.reason}; session: {backend.name} has {gtid}"
        elapsed = time.monotonic() - gs.written_at if gs.written_at else float("inf")
        if elapsed < gs.apply_delay:
            # Replicas have recently needed longer than this to apply a write: a check now
            # would most likely fail and cost a second round trip.
            gs.skipped_check()
            counts["use_master_session"] += 1
            return self._master(), f"{d.reason}; session: replicas are likely still applying {gtid}"
        if gs.check_key != (gtid, backend.flavor) and not self._prepare_check(backend.flavor):
            counts["use_master_session"] += 1
            return self._master(), f"{d.reason}; session: cannot check GTID {gtid!r}"
        self._check = gs.check_sql
        counts["gtid_checks"] += 1
        return backend, f"{d.reason}; session: checking {backend.name} has {gtid}"

    def _prepare_check(self, flavor: str) -> bool:
        """Build and validate the check statement for the current GTID on replicas of
        *flavor*, once per GTID; False if the GTID cannot be checked."""
        gs = self._gtid
        assert gs.gtid is not None
        try:
            gs.check_sql, gs.check_is_wait = self._build_check(gs.gtid, flavor)
        except ValueError:
            return False
        gs.check_key = (gs.gtid, flavor)
        return True

    def _build_check(self, gtid: str, flavor: str) -> tuple[str, bool]:
        """The statement that tells whether a replica has *gtid*, and whether it is a wait
        (0 = applied) rather than mysqlnd_ms's check_for_gtid (a row = applied)."""
        injection = self._injection
        if injection is not None and injection.check_for_gtid:
            if not (is_valid_gtid(gtid, "mariadb") or is_valid_gtid(gtid, "mysql")):
                raise ValueError(gtid)
            return injection.check_for_gtid.replace("#GTID", f"'{gtid}'"), False
        timeout = injection.wait_for_gtid_timeout if injection is not None else 0
        return wait_sql(flavor, gtid, timeout), True

    def _run_check(self, cur: pymysql.cursors.Cursor, sql: str, args: Any) -> bool:
        """Send *sql*, the check, maybe followed by the read in the same packet; True if the
        replica has the GTID, and then *cur* stands at the check's result."""
        cur.execute(sql, args)
        row = cur.fetchone()
        passed = row is not None and (not self._gtid.check_is_wait or row[0] == 0)
        if not passed:
            while cur.nextset():  # the read ran on the stale replica: drop its result
                pass
        return passed

    def _check_result(self, backend: Backend, passed: bool) -> None:
        gs = self._gtid
        if passed:
            gs.confirm(backend.name)
            gs.check_passed()
        else:
            self._stats.counts["gtid_check_failed"] += 1
            gs.check_failed(time.monotonic() - gs.written_at if gs.written_at else 1.0)

    def _monitor_key(self, backend: Backend) -> tuple[str, int, str, str]:
        s = backend.server
        return (
            s.host,
            s.port or 3306,
            s.socket or "",
            str(s.user or self._defaults.get("user", "")),
        )

    def _watch_replicas(self) -> None:
        for b in self._slaves:
            params = b.params(self._defaults, {})
            params.pop("autocommit", None)
            params["connect_timeout"] = min(float(params.get("connect_timeout", 10)), 5.0)
            monitor.watch(self._monitor_key(b), params, self.group.replica_status_interval)

    def _master(self, *, lazy: bool = True, only: tuple[str, ...] | None = None) -> Backend:
        backend = self._master_backend
        if (
            backend is not None
            and backend.conn is not None
            and (only is None or backend.name in only)
        ):
            return backend
        errors = []
        # Several masters (multi_master): the first that answers takes the writes and keeps
        # them, as MySQL Router's read-write mode; never load-balanced per statement.
        for candidate in self._masters:
            if only is not None and candidate.name not in only:
                continue
            if candidate.conn is not None:
                self._master_backend = candidate
                return candidate
            why = health.down.get(candidate.address)
            if why is not None:
                # Quarantined: the probe tells when it answers again; no connect timeout here.
                errors.append(f"{candidate.info}: quarantined ({why})")
                continue
            try:
                self._open(candidate, lazy=lazy)
            except PoolTimeout:
                raise  # the server is fine; this process is using all its pooled connections
            except err.OperationalError as exc:
                errors.append(f"{candidate.info}: {exc.args[-1]}")
                continue
            self._master_backend = candidate
            return candidate
        raise NoBackendAvailable(
            f"group {self.group.name!r}: no master could be connected; nothing was executed: "
            + "; ".join(errors)
        )

    def _slave(self, candidates: tuple[str, ...], picked: Backend | None = None) -> Backend:
        backend = picked or self._by_name[self._picker.pick(candidates)]
        if backend.conn is not None:
            return backend
        if backend.role == "master":  # the user filter may send a read to a master
            return self._master(only=(backend.name,))
        failover = self.group.failover
        tried: list[str] = []
        while True:
            try:
                self._open(backend, lazy=True)
                return backend
            except PoolTimeout:
                raise
            except err.OperationalError as exc:
                tried.append(backend.name)
                if failover.remember_failed:
                    self._failed.add(backend.name)
                if failover.strategy == "disabled":
                    raise
                limit = failover.max_retries
                down = health.down
                left = tuple(
                    n for n in candidates if n not in tried and self._by_name[n].address not in down
                )
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

    def _open(self, backend: Backend, *, lazy: bool, retry_stale: bool = False) -> None:
        kind = "lazy" if lazy else "non_lazy"
        # Session tracking costs nothing until a tracked item changes; it tells msplugin the
        # master's GTIDs and, with session_state, changes no statement text shows.
        flags = CLIENT.SESSION_TRACK
        if backend.role == "slave" and self._session_configured:
            # Lets a session-consistent read carry its GTID check in the same packet.
            flags |= CLIENT.MULTI_STATEMENTS
        try:
            backend.connect(
                self._defaults,
                self._overrides,
                flags=flags,
                pooling=self.group.pooling,
                before_wait=lambda: self._spare(backend),
            )
        except err.OperationalError as exc:
            self._stats.counts[f"{kind}_connections_{backend.role}_failure"] += 1
            if health.is_disconnect(exc):
                self._report_failure(backend, f"cannot connect: {exc.args[-1]}")
            raise
        track_gtids = backend.role == "master" and self._track_gtids
        if track_gtids or self._state is not None:
            try:
                self._setup_tracking(backend, gtids=track_gtids, state=self._state is not None)
            except err.MySQLError as exc:
                # A pooled connection that broke while idle (the server restarted): nothing
                # of the application's was sent; try once more with a new connection.
                pooled = backend.pool is not None
                self._stats.counts[f"{kind}_connections_{backend.role}_failure"] += 1
                if not pooled or retry_stale or not health.is_disconnect(exc):
                    self._lost(backend, exc)
                    raise
                self._discard(backend)
                self._open(backend, lazy=lazy, retry_stale=True)
                return
        if self._isolation is not None:
            self._set_isolation(backend, self._isolation)
        health.record_success(backend.address)
        self._stats.counts[f"{kind}_connections_{backend.role}_success"] += 1

    def _set_isolation(self, backend: Backend, level: str) -> None:
        assert backend.conn is not None
        try:
            with backend.conn.cursor() as cur:
                cur.execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {level}")
        except err.MySQLError as exc:
            if health.is_disconnect(exc):
                self._lost(backend, exc)
            raise

    def _setup_tracking(self, backend: Backend, *, gtids: bool, state: bool) -> None:
        """One statement at connect: report GTIDs (master), and session state changes."""
        assert backend.conn is not None
        parts = []
        if gtids:
            parts.append(gtid_tracking(backend.flavor))
        if state:
            parts.append("session_track_state_change = ON, session_track_schema = ON")
        try:
            with backend.conn.cursor() as cur:
                cur.execute("SET SESSION " + ", ".join(parts))
            _consumed(backend)
        except err.MySQLError as exc:
            if health.is_disconnect(exc):
                raise
            if gtids:
                # Without tracking every write is "untracked": session reads go to the master.
                logger.warning(
                    "cannot track GTIDs on %s (%s): session reads go to the master",
                    backend.info,
                    exc,
                )
                self._track_gtids = False
            if state:
                logger.warning(
                    "cannot track session state changes on %s (%s): session_state sees "
                    "statement text only",
                    backend.info,
                    exc,
                )

    def _connect_all(self) -> None:
        """lazy_connections false: connect the master and every slave now."""
        try:
            self._master(lazy=False)
        except NoBackendAvailable:
            self.close()
            raise
        for backend in self._slaves:
            if backend.address in health.down:
                continue  # quarantined: connected lazily once a probe brings it back
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

    # ---------------------------------------------------------------- failures

    def _report_failure(self, backend: Backend, reason: str) -> None:
        params = backend.params(self._defaults, {})
        params.pop("autocommit", None)
        health.record_failure(
            backend.address, str(backend.info), reason, self.group.quarantine, params
        )

    def _spare(self, opening: Backend) -> None:
        """A pool is exhausted and this connection must wait: first give back the backend
        connections it can spare (no transaction, no session state), so that two facade
        connections never wait forever for what the other holds. Needs session_state warn
        or sync: with "off" nothing is known to be spare."""
        tracker = self._state
        if tracker is None:
            return
        for b in self._open_backends():
            if (
                b is opening
                or b is self._pinned
                or b.dirty
                or b.in_transaction
                or b.pool is None
                or tracker.holds_state(b.name)
            ):
                continue
            logger.debug("pool exhausted: returning the idle connection to %s", b.info)
            b.close()

    def _lost(self, backend: Backend, exc: BaseException) -> None:
        """*backend*'s connection broke: close it, tell the quarantine, forget its session."""
        self._discard(backend)
        self._stats.counts["connections_lost"] += 1
        self._report_failure(backend, f"connection lost: {exc.args[-1] if exc.args else exc!r}")

    def _discard(self, backend: Backend) -> None:
        self._lane_close()
        backend.close(broken=True)
        # Idle pooled connections to a server that dropped this one are most likely broken too.
        discard_idle(*backend.address)
        if self._state is not None:
            self._state.lost(backend.name)

    def _recover(self, backend: Backend, exc: err.MySQLError, query: str, attempt: int) -> Backend:
        """After *exc* from *backend* running *query*: the backend to run it on again, or
        raise. A read whose connection broke runs again once, elsewhere; a statement the
        server refused with a transient error code runs again on the same server."""
        c = self._c
        assert c is not None
        trx = self._trx_context()  # before closing: the master's reply says if autocommit is off
        if not health.is_disconnect(exc):
            te = self.group.transient_error
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            if te is None or attempt >= te.max_retries:
                raise exc
            if not after_server_error(code, te.mysql_error_codes, trx):
                raise exc
            self._stats.counts["transient_error_retries"] += 1
            logger.info(
                "%s: error %d on %s, a transient error: retry %d of %d in %d us",
                _cut(query),
                code,
                backend.info,
                attempt + 1,
                te.max_retries,
                te.usleep_retry,
            )
            time.sleep(te.usleep_retry / 1_000_000)
            return backend
        held = self._state is not None and self._state.holds_state(backend.name)
        self._lost(backend, exc)
        others = self.group.failover.strategy != "disabled" or any(
            n != backend.name for n in self._healthy()
        )
        refusal = (
            "it was already retried once"
            if attempt
            else after_disconnect(c, backend.role, trx, effects(query), held, others)
        )
        if refusal is not None:
            raise _lost_error(backend, exc, refusal) from exc
        forget = backend.name not in self._failed and not self.group.failover.remember_failed
        self._failed.add(backend.name)
        try:
            retry_on = self._route(query)
        finally:
            if forget:
                self._failed.discard(backend.name)
        self._stats.counts["read_retries"] += 1
        logger.warning(
            "%s: connection to %s lost (%s); the read runs again on %s",
            _cut(query),
            backend.info,
            exc.args[-1] if exc.args else exc,
            retry_on.info,
        )
        return retry_on

    def _raise_if_lost(self, backend: Backend, exc: err.MySQLError, refusal: str) -> None:
        if health.is_disconnect(exc):
            self._lost(backend, exc)
            raise _lost_error(backend, exc, refusal) from exc

    def _healthy(self) -> tuple[str, ...]:
        """The slaves neither failed on this connection nor quarantined in the process."""
        failed = self._failed
        down = health.down
        if not failed and not down:
            return self._slave_names
        by_name = self._by_name
        return tuple(
            n for n in self._slave_names if n not in failed and by_name[n].address not in down
        )

    # ---------------------------------------------------------------- PEP 249 and PyMySQL API

    def _check_open(self) -> None:
        if self._closed:
            raise err.InterfaceError(0, "connection is closed")

    def cursor(self, cursorclass: CursorClass | None = None) -> Cursor:
        """Return a new Cursor (PEP 249); *cursorclass* is a PyMySQL cursor class."""
        self._check_open()
        return Cursor(self, cursorclass or self._cursorclass)

    def commit(self) -> None:
        """Commit on every backend with an open transaction (PEP 249 .commit())."""
        self._end_transaction("commit")

    def rollback(self) -> None:
        """Roll back on every backend with an open transaction (PEP 249 .rollback())."""
        self._end_transaction("rollback")

    def _end_transaction(self, how: str) -> None:
        self._check_open()
        pinned = self._pinned
        if pinned is not None and pinned.conn is None:
            self._pinned = None
            self._xa = False
            if how == "commit":
                raise err.OperationalError(
                    health.CR_SERVER_LOST,
                    f"commit: the transaction open on {pinned.info} was lost with its "
                    "connection and did not commit",
                )
        for b in self._open_backends():
            if b.dirty or b.in_transaction or b is self._pinned:
                assert b.conn is not None
                b.conn.commit() if how == "commit" else b.conn.rollback()
                b.dirty = False
                if how == "commit" and b.role == "master":
                    self._learn_gtid(b, b.status, committed=True)
        self._pinned = None
        self._xa = False

    def begin(self, read_only: bool = False) -> None:
        """Start a transaction; every statement runs where it started until commit/rollback.

        It starts on the master, or with ``read_only=True`` and trx_stickiness "on" on one slave.
        """
        sql = "START TRANSACTION READ ONLY" if read_only else "BEGIN"
        backend = self._route(sql)
        assert backend.conn is not None
        with backend.conn.cursor() as cur:
            cur.execute(sql)
        self._after(backend)

    def set_qos(self, level: str, *, age: int | None = None, gtid: str | None = None) -> None:
        """Set the service level for the following statements: strong, session or eventual.

        ``age`` (eventual only): read only from replicas at most that many seconds behind.
        ``gtid`` (session only): reads must see this GTID, e.g. one a previous request's
        connection returned from last_gtid(). Refused inside a transaction.
        """
        self._lane_close()
        if self._trx_context() != NO_TRANSACTION:
            raise TransactionError("set_qos() inside a transaction: commit or roll back first")
        if level not in ("strong", "session", "eventual"):
            raise err.ProgrammingError(
                f"set_qos(): level must be 'strong', 'session' or 'eventual', got {level!r}"
            )
        if age is not None and (level != "eventual" or not isinstance(age, int) or age < 0):
            raise err.ProgrammingError(
                "set_qos(): age is a number of seconds >= 0, with 'eventual' only"
            )
        if gtid is not None:
            if level != "session":
                raise err.ProgrammingError("set_qos(): gtid goes with 'session' only")
            if not (is_valid_gtid(gtid, "mariadb") or is_valid_gtid(gtid, "mysql")):
                raise err.ProgrammingError(f"set_qos(): not a GTID: {gtid!r}")
            self._gtid.require(gtid, 0.0)
        self._policy = self._policy._replace(qos=level, age=age)
        self._plans.clear()
        if level == "session" and not self._track_gtids:
            self._track_gtids = True
            master = self._master_backend
            if master is not None and master.conn is not None:
                self._setup_tracking(master, gtids=True, state=False)
        if age is not None:
            self._watch_replicas()

    def set_session_state(self, mode: str) -> None:
        """Set how session state is handled from now on: "off", "warn" or "sync".

        Switching from "off" starts tracking from nothing: state that statements left before
        is unknown to msplugin. Between "warn" and "sync" what is tracked is kept.
        """
        self._lane_close()
        if mode not in MODES:
            raise err.ProgrammingError(
                f"set_session_state(): mode must be 'off', 'warn' or 'sync', got {mode!r}"
            )
        if mode == "off":
            self._state = None
            return
        if self._state is not None:
            self._state.mode = mode
            return
        self._state = Tracker(mode, tuple(self._by_name))
        for b in self._open_backends():
            self._setup_tracking(b, gtids=False, state=True)

    def session_state(self) -> dict[str, dict[str, Any]]:
        """What each backend's session holds, as msplugin tracked it, for debugging.

        Per backend: session settings the application set there (statement texts), names of
        user variables, temporary tables and prepared statements, LOCK TABLES, the number of
        named locks, and whether the server reported changes no statement explains. Never
        variable values. Empty entries when session_state is "off".
        """
        if self._state is None:
            return {name: {} for name in self._by_name}
        return self._state.snapshot()

    def last_gtid(self) -> str | None:
        """The GTID of this connection's last write (None if unknown), to carry to later reads."""
        return self._gtid.last_write

    def close(self) -> None:
        """Close every backend connection (PEP 249 .close()); a second close raises Error."""
        if self._closed:
            raise err.Error("Already closed")
        self._closed = True
        self._lane_close()
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
        self._lane_close()
        self._check_open()
        value = bool(value)
        for b in self._open_backends():
            assert b.conn is not None
            b.conn.autocommit(value)
        self._autocommit = value
        self._overrides["autocommit"] = value
        if value:
            self._pinned = None  # switching autocommit on commits what was open
        self._stats.counts["trx_autocommit_on" if value else "trx_autocommit_off"] += 1

    def get_autocommit(self) -> bool:
        return self._autocommit

    def select_db(self, db: str) -> None:
        """Make *db* the current database on every open backend and on those opened later."""
        self._lane_close()
        self._check_open()
        for b in self._open_backends():
            assert b.conn is not None
            b.conn.select_db(db)
        self._overrides["database"] = db
        if self._state is not None:
            self._state.forget("database")

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        """Set the connection character set on every open backend and on those opened later."""
        self._lane_close()
        self._check_open()
        for b in self._open_backends():
            assert b.conn is not None
            b.conn.set_character_set(charset, collation)
        self._overrides["charset"] = charset
        if collation is not None:
            self._overrides["collation"] = collation
        if self._state is not None:
            self._state.forget("charset")

    def set_isolation_level(self, level: str) -> None:
        """Set the transaction isolation level of every backend session, open or opened later.

        *level*: READ UNCOMMITTED, READ COMMITTED, REPEATABLE READ or SERIALIZABLE. Sent as
        SQL it would reach the master only (a SET is not a read).
        """
        self._lane_close()
        self._check_open()
        name = " ".join(level.upper().replace("-", " ").split())
        if name not in _ISOLATION_LEVELS:
            raise err.ProgrammingError(
                f"isolation level {level!r}: expected one of {', '.join(_ISOLATION_LEVELS)}"
            )
        for b in self._open_backends():
            self._set_isolation(b, name)
        self._isolation = name

    def character_set_name(self) -> str:
        """The connection character set every backend uses (as PyMySQL names it)."""
        return str(self._overrides.get("charset") or self._defaults.get("charset") or "utf8mb4")

    def ping(self, reconnect: bool = True) -> None:
        """Check every open backend (reconnecting if asked); with none open, connect the master."""
        self._check_open()
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
        e = self._explain_routing(c, d)
        if self._state is None:
            return e
        # No replica picked yet (random): judge state on the first, as a stand-in.
        chosen = e.server or (self._slave_names[0] if e.role == "slave" else None)
        if chosen is None:
            return e
        plan = self._state.plan(
            sql,
            effects(sql),
            chosen,
            read=c.read,
            fixed=_fixed_by(c, d.target),
            master=(self._master_backend or self._masters[0]).name,
        )
        reason = e.reason
        if plan.error:
            return dataclasses.replace(e, reason=f"{reason}; would fail: {plan.error}")
        if plan.move_to:
            e = dataclasses.replace(e, role=self._by_name[plan.move_to].role, server=plan.move_to)
            reason += f"; {plan.reason}"
        for w in plan.warnings:
            if not e.server:
                w = w.replace(f"runs on {chosen}", "runs on a slave")
            reason += f"; warning: {w}"
        if plan.replay:
            reason += f"; {len(plan.replay)} session setting(s) replayed there first"
        return dataclasses.replace(e, reason=reason)

    def _explain_routing(self, c: Classification, d: Decision) -> Explanation:
        master = self._master_backend
        last = self._last_used
        if d.target is Target.MASTER:
            name = (master or self._masters[0]).name
            return Explanation(c.route, "master", name, d.reason)
        if d.target is Target.TRANSACTION:
            pinned = self._pinned
            assert pinned is not None
            return Explanation(c.route, pinned.role, pinned.name, d.reason)
        if d.target is Target.LAST_USED:
            if last is None:
                return Explanation(
                    c.route, "last_used", None, f"{d.reason}; would fail: nothing ran yet"
                )
            return Explanation(c.route, last.role, last.name, d.reason)
        reason = d.reason
        if d.consistency == "session" and c.read:
            reason += "; service level session: a replica that has this connection's writes, else the master"
        elif d.consistency == "eventual" and self._policy.age is not None:
            reason += f"; service level eventual: a replica at most {self._policy.age} s behind"
        return Explanation(c.route, "slave", self._picker.peek(self._slave_names), reason)

    def stats(self) -> dict[str, int]:
        """This connection's counters (see msplugin.get_stats() for the process)."""
        return self._stats.snapshot()


def _consumed(backend: Backend) -> None:
    """The reply's session-state block has been read: clear its flag. PyMySQL updates the
    status only from OK packets, so a result set would otherwise show the flag of an older
    reply, and every later statement would take the slow path looking for a block."""
    if backend.conn is not None:
        backend.conn.server_status &= ~SESSION_STATE_CHANGED  # type: ignore[attr-defined]


_RETURNING: Final = re.compile(r"\bRETURNING\b", re.IGNORECASE)


def _gtid_unreadable(reply: Any, cur: pymysql.cursors.Cursor | None) -> bool:
    """True when the reply to a write cannot hold its GTID: more results follow (a CALL that
    returned rows, a multi-statement string: the GTID comes in a later OK packet the
    application may never read), or the write returned rows (MariaDB's ``RETURNING``), whose
    EOF packet carries no session state."""
    if reply.has_next:
        return True
    if reply.message is not None or cur is None:
        return False  # an OK packet
    executed = cur._executed  # type: ignore[attr-defined]
    return isinstance(executed, str) and _RETURNING.search(executed) is not None


def _fixed_by(c: Classification, target: Target) -> str:
    """Why session state may not move this statement to another backend ("" if it may)."""
    if target is Target.TRANSACTION:
        return "a transaction is open there"
    if c.hinted:
        return "a hint chose the server"
    return ""


def _lost_error(backend: Backend, exc: BaseException, refusal: str) -> err.OperationalError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) and exc.args[0] else 0
    return err.OperationalError(
        code or health.CR_SERVER_LOST,
        f"{backend.info}: connection lost ({exc.args[-1] if exc.args else exc!r}); "
        f"the statement was not retried: {refusal}",
    )


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
        conn = self.connection
        picked = None
        lane = conn._lane.get(query)
        if lane is not None:
            if _down:
                conn._lane_close()  # reads avoid a server that is down: the pick may differ
            elif _route_levels == _ROUTE_LOG_OFF:  # the routing log is off (and was asked)
                # The fast lane: a read whose route only needs a slave picked (see
                # Connection._lane_update); what _route and _after would do, inlined.
                backend = conn._fixed_slave or conn._by_name[conn._picker.pick(conn._slave_names)]
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
                        return self._run_again(exc, query, args)
                    if bconn.server_status & _LANE_STATUS != _AUTOCOMMIT:  # type: ignore[attr-defined]
                        conn._c = lane[0]
                        conn._eff = NOTHING  # a transaction opened, or session state changed
                        conn._after(backend, cur)
                    elif conn._state is not None:
                        conn._state.found_rows_home = backend.name
                    return result
        try:
            backend = conn._route(query, picked)
        except BaseException:
            conn._lane_close()  # it may have left the connection half-way (a new pick, ...)
            raise
        try:
            return self._run(backend, query, args)
        except err.MySQLError as exc:
            return self._run_again(exc, query, args)

    def _run(self, backend: Backend, query: str, args: Any) -> int:
        conn = self.connection
        cur = self._cursors.get(backend.name)
        if cur is None or cur.connection is not backend.conn:  # _cursor_for, inlined: per statement
            cur = self._cursor_for(backend)
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

    def _run_again(self, exc: err.MySQLError, query: str, args: Any) -> int:
        """The statement failed: retry it where the rules allow (see msplugin.retry), else
        raise. The failed backend is the last used one (a session check may have moved the
        read to the master)."""
        conn = self.connection
        conn._lane_close()
        attempt = 0
        while True:
            failed = conn._last_used
            assert failed is not None
            backend = conn._recover(failed, exc, query, attempt)
            attempt += 1
            try:
                return self._run(backend, query, args)
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
                "%s -> %s: session check failed on %s", _cut(query), master.name, backend.name
            )
        mcur = self._cursor_for(master)
        self._current = mcur
        result = mcur.execute(query, args)
        conn._after(master, mcur)
        return result

    def executemany(self, query: str, args: Sequence[Any]) -> int | None:
        """Route *query* once and run it for every item of *args* on that backend."""
        conn = self.connection
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

    def callproc(self, procname: str, args: Sequence[Any] = ()) -> Any:
        """Call a stored procedure on the master (PEP 249 .callproc())."""
        backend = self.connection._route("CALL")
        return self._run_once(
            backend, lambda cur: cur.callproc(procname, args), "a procedure call is never retried"
        )

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
        except err.MySQLError as exc:
            conn._raise_if_lost(backend, exc, refusal)
            raise
        conn._after(backend, cur)
        return result

    def _result(self) -> pymysql.cursors.Cursor:
        cur = self._current
        if cur is None:
            raise err.ProgrammingError("execute() first")
        return cur

    def fetchone(self) -> Any:
        cur = self._current  # not self._result(): a call less per row
        if cur is None:
            raise err.ProgrammingError("execute() first")
        return cur.fetchone()

    def fetchmany(self, size: int | None = None) -> Any:
        # arraysize is this cursor's: the backend cursor may predate a change to it.
        return self._result().fetchmany(self.arraysize if size is None else size)

    def fetchall(self) -> Any:
        cur = self._current  # not self._result(): a call less per statement
        if cur is None:
            raise err.ProgrammingError("execute() first")
        return cur.fetchall()

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

    def setoutputsize(self, *args: Any) -> None:
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
