"""The facade Connection (PEP 249): carry out what the core decides, on real connections.

msplugin.core holds the connection's state and decides; this module connects backends (with
failover), runs statements and the statements msplugin adds (GTID checks, replayed session
settings), and hands the replies back to the core. A statement's path: ``Cursor.execute`` ->
the core's memo (one lookup) or ``Connection._route`` (the full decision, then a backend) ->
PyMySQL -> ``ConnectionCore.replied`` (one comparison) or ``Connection._after`` (learn).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

import pymysql
import pymysql.cursors
from pymysql import err
from pymysql.charset import charset_by_name
from pymysql.constants import CLIENT, SERVER_STATUS
from pymysql.converters import escape_item, escape_string

from msplugin import driver, health
from msplugin.backends import Backend, ServerInfo
from msplugin.classify import Classification, first_keyword
from msplugin.config import Config, GroupConfig, load_config
from msplugin.consistency import SESSION_STATE_CHANGED, gtid_tracking, is_valid_gtid
from msplugin.core import ConnectionCore, Decided, Memo, Reply
from msplugin.cursor import Cursor, CursorClass, in_use_error
from msplugin.errors import (
    NoBackendAvailable,
    PoolTimeout,
    RoutingError,
    StateDivergenceWarning,
    TransactionError,
)
from msplugin.filters import (
    UserCallback,
    UserPicker,
    load_callback,
    make_narrower,
    make_picker,
)
from msplugin.health import down as _down
from msplugin.monitor import monitor, monitor_params
from msplugin.monitor import not_replicating as _not_replicating
from msplugin.options import sort_options
from msplugin.pool import discard_idle
from msplugin.retry import after_disconnect, after_server_error, lost_commit, lost_transaction
from msplugin.routing import NO_TRANSACTION, Decision, Explanation, Target, split_replicating
from msplugin.state import MODES, NOTHING, Effects, Tracker
from msplugin.stats import Stats

__all__ = ["Connection", "Cursor", "connect"]

logger = logging.getLogger("msplugin.connection")
route_logger = logging.getLogger("msplugin.routing")
state_logger = logging.getLogger("msplugin.state")

_ISOLATION_LEVELS: Final = ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")
_AUTOCOMMIT: Final = SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
_NO_BACKSLASH_ESCAPES: Final = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
# Server errors after which the server closes the session: the packet was larger than its
# max_allowed_packet, the connection was killed, or it timed out idle (MySQL 8.0.24+).
ER_NET_PACKET_TOO_LARGE: Final = 1153
_SESSION_ENDED: Final = frozenset({ER_NET_PACKET_TOO_LARGE, 1927, 4031})
_MIN_PACKET: Final = 1024  # the smallest max_allowed_packet a server accepts


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


class Step:
    """One statement's route, from _route to the reply: the backend, what decided it, the
    GTID check a session read needs there, and the memo to remember the route in."""

    __slots__ = ("backend", "check", "decided", "memo", "reason", "sql")

    def __init__(
        self,
        sql: str,
        backend: Backend,
        decided: Decided,
        reason: str,
        check: str | None = None,
        memo: dict[str, Memo] | None = None,
    ) -> None:
        self.sql = sql
        self.backend = backend
        self.decided = decided
        self.reason = reason
        self.check = check
        self.memo = memo


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
        connect_factory: Callable[..., Any] | None = None,
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
        self._slave_names = tuple(b.name for b in self._slaves)
        self._timed = group.load_balancer.name == "fastest_response"
        self._classifier = group.classifier
        self._stats = Stats()
        # The state and the rules: where statements go, transactions, GTIDs, session state.
        self._core = ConnectionCore(
            group, autocommit=autocommit, memo_able=not self._custom and not self._timed,
            stats=self._stats,
        )  # fmt: skip
        self._defaults: dict[str, Any] = {"autocommit": autocommit, **connect_kwargs}
        if group.server_charset is not None and "charset" not in connect_kwargs:
            self._defaults["charset"] = group.server_charset
        for key, value in (("user", user), ("password", password), ("database", database)):
            if value is not None:
                self._defaults[key] = value
        if connect_factory is not None:
            # Travels with the keywords: to pools (a pool per factory), probes and monitors.
            self._defaults["connect_factory"] = connect_factory
        # API-level state that overrides per-server keys on every backend (select_db etc.).
        self._overrides: dict[str, Any] = {"autocommit": autocommit}
        self._isolation: str | None = None  # set_isolation_level(): applied to every backend
        self._cursorclass = cursorclass
        # Set while a thread is inside a call that talks to a server (Cursor.execute, ...).
        self._busy = False
        conv: dict[Any, Any] = connect_kwargs.get("conv") or pymysql.converters.conversions
        self._encoders: dict[Any, Any] = {k: v for k, v in conv.items() if type(k) is not int}
        self._master_backend: Backend | None = None
        self._user_multi = bool(int(connect_kwargs.get("client_flag", 0)) & CLIENT.MULTI_STATEMENTS)
        policy = self._core.policy
        if policy.age is not None or group.replica_stopped_limit is not None:
            self._watch_replicas(wait=policy.age is not None)
        logger.info("facade connection for group %r (%s)", group.name, self._topology())

    def _topology(self) -> str:
        return ", ".join(
            f"{b.name}={b.server.host}:{b.server.port}" for b in self._by_name.values()
        )

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if core.closed else "open"
        opened = [b.name for b in self._by_name.values() if b.conn is not None]
        return (
            f"<msplugin.Connection group={self.group.name!r} {state} "
            f"connected={opened} last_used={core.last_used} autocommit={core.autocommit}>"
        )

    @property
    def _last_used(self) -> Backend | None:
        name = self._core.last_used
        return self._by_name[name] if name is not None else None

    @property
    def _pinned(self) -> Backend | None:
        name = self._core.pinned
        return self._by_name[name] if name is not None else None

    # ---------------------------------------------------------------- routing (per statement)

    def _memo_backend(self, memo: Memo) -> Backend | None:
        """The backend a remembered statement goes to; None when it must be routed the full
        way (a server of this group is quarantined or not replicating: reads avoid it)."""
        candidates = memo.candidates
        if candidates and (_down or _not_replicating) and self._avoiding():
            return None
        return self._by_name[memo.server or self._picker.pick(candidates)]

    def _route(self, query: str, picked: Backend | None = None) -> Step:
        """Choose the backend for *query*, connecting it (and failing over) if need be, and
        replaying session settings there under session_state sync; the statement itself is
        not sent. *picked*: the slave a remembered route picked but found unconnected."""
        core = self._core
        if core.closed:
            raise err.InterfaceError(0, "connection is closed")
        memo = core.memo
        decided = core.decided(query, self._classifier)
        c, d, eff = decided.c, decided.d, decided.eff
        check = None
        target = d.target
        reason = d.reason
        stat = d.stat
        plain = decided.memo_ok and not self._custom
        if self._custom:
            self._filter_context(query, target)
        if target is Target.SLAVE:
            if (
                core.policy.age is not None
                or core.failed
                or self._allowed
                or ((_down or _not_replicating) and self._avoiding())
            ):
                backend, reason, check = self._read_backend(d, c, picked)
                plain = False
            elif d.consistency == "eventual":
                backend = self._slave(self._slave_names, picked)  # the common read
            elif c.read:  # session, nothing to filter
                backend, reason, check = self._session_backend(d, self._slave_names)
            else:
                backend, reason, check = self._read_backend(d, c)
            plain = plain and backend.role == "slave"
        elif target is Target.MASTER:
            backend = self._master() if self._allowed is None else self._allowed_master()
        elif target is Target.TRANSACTION:
            backend = self._held(c)
            if backend.role == "slave":
                reason = "read-only transaction open on this slave"
                stat = "use_slave_trx"
                plain = False
        else:
            backend = self._last(c)
        tracker = core.tracker
        if tracker is not None and (eff is not NOTHING or not tracker.idle(backend.name, query)):
            moved = self._apply_state(query, c, backend, reason, target, eff)
            if moved[0] is not backend and moved[0].role == "master":
                check = None  # the master has every write: no GTID check
            backend, reason = moved
            plain = False
        if c.statements > 1 and backend.multi_statements and not self._user_multi:
            # msplugin enabled multi-statements on this replica for its GTID checks; the
            # application did not, so its own multi-statement strings stay refused.
            raise err.ProgrammingError(
                "multi-statement strings need client_flag=CLIENT.MULTI_STATEMENTS in connect(); "
                "nothing was sent"
            )
        core.routed(backend.name, backend.role, stat)
        if not core.autocommit:
            backend.dirty = True
        if route_logger.isEnabledFor(logging.DEBUG):
            route_logger.debug("%s -> %s: %s", _cut(query), backend.name, reason)
        return Step(query, backend, decided, reason, check, memo if plain else None)

    def _held(self, c: Classification) -> Backend:
        """The backend holding the open transaction, or a clear error if it was lost."""
        backend = self._pinned
        assert backend is not None
        if backend.conn is None:
            raise err.OperationalError(
                health.CR_SERVER_GONE_ERROR,
                f"the transaction open on {backend.info} was lost with its connection; "
                "roll back and start again; nothing was sent",
            )
        return backend

    def _last(self, c: Classification) -> Backend:
        """The last used backend, for a last_used hint (or a statement classified so)."""
        backend = self._last_used
        if backend is None:
            raise RoutingError(
                f"{c.reason}: no statement has run on this connection yet, so there is no last "
                "used server; nothing was sent"
            )
        if backend.conn is None:
            # Lost, or given back to its pool while a failed statement waited for another
            # pool: a new session would silently answer FOUND_ROWS() and the like wrongly.
            raise err.OperationalError(
                health.CR_SERVER_GONE_ERROR,
                f"{c.reason}: the session on the last used server {backend.info} is gone "
                "(its connection was lost or returned to the pool); nothing was sent",
            )
        return backend

    def _step(self, memo: Memo, backend: Backend, query: str) -> Step:
        """The Step of a remembered statement that ran on *backend*, for the full path's
        learning or recovery."""
        return Step(query, backend, memo.decided, memo.reason, None, self._core.memo)

    def _step_on(self, step: Step, backend: Backend) -> Step:
        """*step* as run on *backend* instead (a failed GTID check sent it to the master)."""
        return Step(step.sql, backend, step.decided, step.reason)

    def _session_fallback(self, step: Step) -> Step:
        """A session read whose replica lacks the GTID (or that cannot be checked per
        execution): the master serves it."""
        master = self._master()
        core = self._core
        core.last_used = master.name
        self._stats.counts["use_master_session"] += 1
        if route_logger.isEnabledFor(logging.DEBUG):
            route_logger.debug(
                "%s -> %s: session check failed on %s",
                _cut(step.sql),
                master.name,
                step.backend.name,
            )
        return Step(step.sql, master, step.decided, step.reason)

    def _avoiding(self) -> bool:
        """True if reads may have to avoid a server of this group: one is quarantined, or
        not replicating (a remembered route's pick could then differ from the full path's)."""
        down, stopped = _down, _not_replicating
        return any(b.address in down or b.address in stopped for b in self._slaves)

    def _filter_context(self, query: str, target: Target) -> None:
        """user, user_multi, node_groups: hand them the statement; narrow the candidates."""
        core = self._core
        ctx = (self.group.name, query, core.last_used, core.trx_context() != NO_TRANSACTION)
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

    def _after(self, step: Step, cur: pymysql.cursors.Cursor | None = None) -> None:
        """Learn from the reply to *step*'s statement (the core decides what it means), and
        remember its route when nothing but the text and the state decided it."""
        core = self._core
        backend = step.backend
        memo = step.memo
        try:
            reply = _reply(backend, cur)
            if core.learn(step.decided.c, step.decided.eff, backend.name, reply):
                self._inject(backend)
            if reply.status & SESSION_STATE_CHANGED:
                _consumed(backend)
        finally:
            core.moved()
        if memo is not None:
            # A read is picked again each time (random once keeps its pick in the picker,
            # which a read that had to avoid a server may have changed).
            fixed = step.decided.d.target is not Target.SLAVE
            core.remember(
                memo, step.sql, step.decided, step.reason, backend.name,
                self._slave_names, fixed, reply.status,
            )  # fmt: skip

    def _committed(self, backend: Backend) -> None:
        """commit() committed on master *backend*: its GTID, as after a committed write."""
        core = self._core
        reply = _reply(backend, None) if core.track_gtids else None
        core.learn_gtid(backend.name, reply, committed=True)
        self._inject(backend)

    def _inject(self, backend: Backend) -> None:
        """A write committed on *backend*: run mysqlnd_ms's global_transaction_id_injection
        statements, if the configuration has them."""
        injection = self._core.injection
        if injection is None:
            return
        if injection.fetch_last_gtid and not self._core.track_gtids:
            gtid = self._run_injection(backend, injection.fetch_last_gtid, "gtid_fetch")
            if gtid:
                self._core.gtid_written(gtid, backend.name)
        if injection.on_commit:
            self._run_injection(backend, injection.on_commit, "gtid_on_commit")

    def _run_injection(self, backend: Backend, sql: str, stat: str) -> str | None:
        """Run a mysqlnd_ms global_transaction_id_injection statement; return its first value."""
        injection = self._core.injection
        assert backend.conn is not None and injection is not None
        self._stats.counts[stat] += 1
        try:
            with backend.conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone() if cur.description else None
        except err.MySQLError as exc:
            if injection.report_error:
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
        tracker = self._core.tracker
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
        tracker = self._core.tracker
        assert tracker is not None and backend.conn is not None
        statement = ""
        try:
            with backend.conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        except err.MySQLError as exc:
            raise err.OperationalError(
                exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0,
                f"session_state sync: replaying {_cut(statement)!r} on {backend.name} failed "
                f"({exc.args[-1]}); the statement was not sent",
            ) from exc
        tracker.replayed(backend.name)
        self._stats.counts["state_replayed"] += len(statements)
        state_logger.debug("replayed %d session setting(s) on %s", len(statements), backend.name)

    # ---------------------------------------------------------------- choosing a replica

    def _read_backend(
        self, d: Decision, c: Classification, picked: Backend | None = None
    ) -> tuple[Backend, str, str | None]:
        """The backend for a read the decision sends to a slave, the reason to log, and the
        GTID check a session read needs there. *picked*: a remembered route's pick, kept if
        it is still a candidate."""
        candidates, stale = self._eligible(d)
        if candidates:
            if d.consistency != "session" or not c.read:
                keep = picked if picked is not None and picked.name in candidates else None
                return self._slave(candidates, keep), d.reason, None
            return self._session_backend(d, candidates)
        age = self._core.policy.age
        if age is not None and d.consistency == "eventual":
            reason = f"{d.reason}; no replica within age {age} s"
        elif self._allowed is not None and not self._allowed[1]:
            reason = f"{d.reason}; the filters left no slave"
        else:
            reason = f"{d.reason}; no replica can serve it ({self._unavailable()})"
        if self.group.failover.strategy == "disabled":
            if stale:
                return *self._stale_slave(stale, reason, "failover is disabled"), None
            raise NoBackendAvailable(
                f"group {self.group.name!r}: {reason} and failover is disabled; nothing was sent"
            )
        try:
            master = self._master() if self._allowed is None else self._allowed_master()
        except NoBackendAvailable as exc:
            if stale:
                return *self._stale_slave(stale, reason, str(exc.args[-1])), None
            raise NoBackendAvailable(
                f"group {self.group.name!r}: {reason}; and {exc.args[-1]}"
            ) from exc
        self._stats.counts["use_master_age" if age is not None else "use_master_failover"] += 1
        return master, reason + ": the master serves it", None

    def _stale_slave(self, stale: tuple[str, ...], reason: str, why: str) -> tuple[Backend, str]:
        """No replica replicates and the master cannot serve: a replica that stopped
        replicating is better than no answer (MaxScale's "stale slave")."""
        self._stats.counts["use_slave_stale"] += 1
        return self._slave(
            stale
        ), f"{reason}; the master cannot serve it ({why}): a replica that is not replicating does"

    def _eligible(self, d: Decision) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(replicas that may serve a read, replicas left out only because they stopped
        replicating longer than replica_stopped_limit)."""
        candidates = self._healthy()
        if self._allowed is not None:
            allowed = self._allowed[1]
            candidates = tuple(n for n in candidates if n in allowed)
        age = self._core.policy.age
        if age is not None and d.consistency == "eventual":
            candidates = tuple(
                n
                for n in candidates
                if (st := monitor.status(self._monitor_key(self._by_name[n]))) and st.within(age)
            )
        if not _not_replicating:
            return candidates, ()
        by_name = self._by_name
        since = {
            n: t for n in candidates if (t := _not_replicating.get(by_name[n].address)) is not None
        }
        return split_replicating(
            candidates, since, time.monotonic(), self.group.replica_stopped_limit
        )

    def _unavailable(self) -> str:
        """Why each slave cannot serve a read now: what an error names when none can."""
        now = time.monotonic()
        parts = []
        for name in self._slave_names:
            b = self._by_name[name]
            if (why := health.down.get(b.address)) is not None:
                parts.append(f"{b.info}: quarantined ({why})")
            elif name in self._core.failed:
                parts.append(f"{b.info}: failed on this connection")
            elif (since := _not_replicating.get(b.address)) is not None:
                parts.append(f"{b.info}: not replicating for {now - since:.0f} s")
            elif (age := self._core.policy.age) is not None:
                parts.append(f"{b.info}: not within age {age} s")
        return "; ".join(parts) or "no slave configured"

    def _session_backend(
        self, d: Decision, candidates: tuple[str, ...]
    ) -> tuple[Backend, str, str | None]:
        """A session-consistent read: a replica known to have this connection's writes, one
        to check (the check statement is returned), or the master."""
        core = self._core
        gs = core.gtid
        counts = self._stats.counts
        if gs.gtid is None:
            if gs.untracked_write:
                counts["use_master_session"] += 1
                why = "session: this connection wrote and its GTID is unknown"
                return self._master(), f"{d.reason}; {why}", None
            return self._slave(candidates), f"{d.reason}; session: nothing written yet", None
        gtid = gs.gtid
        backend = self._slave(candidates)  # the load balancer picks first, as for any read
        if backend.role == "master":
            return backend, d.reason, None
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
                return backend, f"{d.reason}; session: {backend.name} has {gtid}", None
        elapsed = time.monotonic() - gs.written_at if gs.written_at else float("inf")
        if elapsed < gs.apply_delay:
            # Replicas have recently needed longer than this to apply a write: a check now
            # would most likely fail and cost a second round trip.
            gs.skipped_check()
            counts["use_master_session"] += 1
            why = f"session: replicas are likely still applying {gtid}"
            return self._master(), f"{d.reason}; {why}", None
        if gs.check_key != (gtid, backend.flavor) and not core.prepare_check(backend.flavor):
            counts["use_master_session"] += 1
            return self._master(), f"{d.reason}; session: cannot check GTID {gtid!r}", None
        counts["gtid_checks"] += 1
        return backend, f"{d.reason}; session: checking {backend.name} has {gtid}", gs.check_sql

    def _run_check(self, cur: pymysql.cursors.Cursor, sql: str, args: Any) -> bool:
        """Send *sql*, the check, maybe followed by the read in the same packet; True if the
        replica has the GTID, and then *cur* stands at the end of the check's result."""
        cur.execute(sql, args)
        row = cur.fetchone()
        cur.fetchall()  # an unbuffered cursor learns whether a result follows at its end
        passed = row is not None and (not self._core.gtid.check_is_wait or _first_value(row) == 0)
        if not passed:
            _drain(cur)  # the read ran on the stale replica: drop its result, or its error
        return passed

    def _check_result(self, backend: Backend, passed: bool) -> None:
        gs = self._core.gtid
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
            s.port,
            s.socket or "",
            str(s.user or self._defaults.get("user", "")),
        )

    def _watch_replicas(self, *, wait: bool) -> None:
        """Have the process's replica monitor watch this group's slaves (for ``age``, and to
        keep reads off replicas that stopped replicating); *wait* for the first statuses."""
        for b in self._slaves:
            params = monitor_params(self._probe_params(b))
            monitor.watch(
                self._monitor_key(b), params, self.group.replica_status_interval, wait=wait
            )

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
        errors: list[str] = []
        while True:
            try:
                self._open(backend, lazy=True)
                return backend
            except PoolTimeout:
                raise
            except err.OperationalError as exc:
                tried.append(backend.name)
                errors.append(f"{backend.info}: {exc.args[-1]}")
                if failover.remember_failed:
                    self._core.mark_failed(backend.name)
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
                    try:
                        return self._master()
                    except NoBackendAvailable as final:
                        raise NoBackendAvailable(
                            f"group {self.group.name!r}: no server could serve the read; "
                            f"replicas tried: {'; '.join(errors)}; and {final.args[-1]}"
                        ) from final
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
        core = self._core
        if backend.role == "slave" and core.session_configured:
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
                self._report_failure(backend, f"cannot connect: {exc.args[-1]}", None)
            raise
        core.flavors[backend.name] = backend.flavor
        if backend.role == "master":
            core.sql_autocommit_off = False  # a new session: autocommit as connect() set it
        track_gtids = backend.role == "master" and core.track_gtids
        if track_gtids or core.tracker is not None:
            try:
                self._setup_tracking(backend, gtids=track_gtids, state=core.tracker is not None)
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
        health.watch(
            backend.address, str(backend.info), self._probe_params(backend), self.group.quarantine
        )
        self._stats.counts[f"{kind}_connections_{backend.role}_success"] += 1

    def _set_isolation(self, backend: Backend, level: str) -> None:
        assert backend.conn is not None
        try:
            with backend.conn.cursor() as cur:
                cur.execute(_isolation_sql(level))
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
                self._core.track_gtids = False
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

    def _probe_params(self, backend: Backend) -> dict[str, Any]:
        """Connect keywords for msplugin's own connections to *backend*'s server."""
        params = backend.params(self._defaults, {})
        params.pop("autocommit", None)
        # The application's session settings are not a probe's; no database either, so that
        # a dropped database cannot fail a probe, and the servers can tell these connections
        # (PROCESSLIST db NULL) from the application's.
        params.pop("init_command", None)
        params.pop("database", None)
        return params

    def _report_failure(self, backend: Backend, reason: str, opened_at: float | None) -> None:
        health.record_failure(
            backend.address,
            str(backend.info),
            reason,
            self.group.quarantine,
            self._probe_params(backend),
            opened_at,
        )

    def _spare(self, opening: Backend) -> None:
        """A pool is exhausted and this connection must wait: first give back the backend
        connections it can spare (no transaction, no session state), so that two facade
        connections never wait forever for what the other holds. Needs session_state warn
        or sync: with "off" nothing is known to be spare."""
        tracker = self._core.tracker
        if tracker is None:
            return
        pinned = self._pinned
        for b in self._open_backends():
            if (
                b is opening
                or b is pinned
                or b.dirty
                or b.in_transaction
                or b.pool is None
                or tracker.holds_state(b.name)
            ):
                continue
            logger.debug("pool exhausted: returning the idle connection to %s", b.info)
            b.close()

    def _lost(self, backend: Backend, exc: BaseException) -> None:
        """*backend*'s connection broke: close it, tell the quarantine, forget its session.

        The quarantine counts it only if the connection is younger than the server's last
        return from quarantine: an older one broke in that outage, already counted.
        """
        opened_at = backend.opened_at
        self._discard(backend)
        self._stats.counts["connections_lost"] += 1
        self._report_failure(backend, f"connection lost: {_detail(exc)}", opened_at)

    def _discard(self, backend: Backend, *, siblings: bool = True) -> None:
        """Close *backend*'s broken connection and forget its session. With *siblings*, the
        idle pooled connections to its server go too: a server that dropped this connection
        most likely dropped them (not so when it answered and ended one session only)."""
        backend.close(broken=True)
        if siblings:
            discard_idle(*backend.address)
        self._core.lost(backend.name)

    def _recover(
        self,
        step: Step,
        exc: err.MySQLError,
        args: Any,
        cur: pymysql.cursors.Cursor | None,
        attempt: int,
    ) -> Step:
        """After *exc* from running *step*: the step to run it again, or raise. A statement
        that never reached the server, or a read whose connection broke, runs again once
        (see msplugin.retry); a statement the server refused with a transient error code
        runs again on the same server."""
        backend, query, c = step.backend, step.sql, step.decided.c
        trx = self._core.trx_context()  # before closing: learned from the master's replies
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        disconnect = health.is_disconnect(exc)
        if disconnect or code in _SESSION_ENDED:
            self._refuse_oversized(backend, exc, query, args, cur, trx)
        if not disconnect:
            if code in _SESSION_ENDED:
                # The server ended this session and answered: no quarantine.
                self._discard(backend, siblings=False)
                raise exc
            return self._transient(step, exc, code, trx, attempt)
        sent = not driver.not_sent(exc)
        tracker = self._core.tracker
        held = tracker is not None and tracker.holds_state(backend.name)
        why = _quarantine_note(backend)  # before _lost: what was known of the server
        self._lost(backend, exc)
        others = self.group.failover.strategy != "disabled" or any(
            n != backend.name for n in self._healthy()
        )
        refusal = (
            "it was already retried once"
            if attempt
            else after_disconnect(c, backend.role, trx, step.decided.eff, held, others, sent)
        )
        if refusal is not None:
            raise self._lost_error(backend, exc, refusal, trx, step, sent, why) from exc
        retry_on = self._route_again(backend, query, sent)
        self._stats.counts["read_retries" if sent else "unsent_retries"] += 1
        logger.warning(
            "%s: connection to %s lost (%s)%s; it runs again on %s",
            _cut(query),
            backend.info,
            _detail(exc),
            "" if sent else " before the statement was sent",
            retry_on.backend.info,
        )
        return retry_on

    def _route_again(self, failed: Backend, query: str, sent: bool) -> Step:
        """Route *query* again after its connection to *failed* broke. A read that may have
        reached *failed* goes elsewhere; a statement that never reached it is routed anew."""
        core = self._core
        if not sent or failed.name in core.failed:
            return self._route(query)
        forget = not self.group.failover.remember_failed
        core.mark_failed(failed.name)
        try:
            return self._route(query)
        finally:
            if forget:
                core.unmark_failed(failed.name)

    def _transient(
        self, step: Step, exc: err.MySQLError, code: int, trx: str, attempt: int
    ) -> Step:
        """A server error: *step* again if its code is a transient_error one, else raise."""
        backend, query = step.backend, step.sql
        te = self.group.transient_error
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
        return step

    def _lost_error(
        self,
        backend: Backend,
        exc: BaseException,
        refusal: str,
        trx: str = NO_TRANSACTION,
        step: Step | None = None,
        sent: bool = True,
        why: str = "",
    ) -> err.OperationalError:
        """The error for a statement whose connection broke and that is not run again: the
        server, what broke, why it was not retried, and what became of an open transaction."""
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) and exc.args[0] else 0
        message = (
            f"{backend.info}: connection lost ({_detail(exc)}); "
            f"{why}the statement was not retried: {refusal}"
        )
        if trx != NO_TRANSACTION:
            kind = step.decided.c.trx if step is not None else ""
            first = first_keyword(step.sql) if step is not None else ""
            message += "; " + lost_transaction(kind, first, sent)
        return err.OperationalError(code or health.CR_SERVER_LOST, message)

    def _refuse_oversized(
        self,
        backend: Backend,
        exc: err.MySQLError,
        query: str,
        args: Any,
        cur: pymysql.cursors.Cursor | None,
        trx: str,
    ) -> None:
        """Raise a clear error if the server dropped the connection because the statement
        was larger than its max_allowed_packet: not a dead server (no quarantine), and
        nothing to send again (it would fail the same way)."""
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if code != ER_NET_PACKET_TOO_LARGE and backend.address in health.down:
            return  # hung or dead: the connection broke for that
        size = _statement_size(cur, query, args)
        if code != ER_NET_PACKET_TOO_LARGE and size <= _MIN_PACKET:
            return  # no server refuses a statement this small
        limit = driver.max_allowed_packet(self._probe_params(backend))
        if code != ER_NET_PACKET_TOO_LARGE and (limit is None or size <= limit):
            return
        self._discard(backend, siblings=False)  # it answered: no quarantine
        message = (
            f"{backend.info}: the statement ({size:,} bytes) is larger than the server's "
            f"max_allowed_packet ({f'{limit:,} bytes' if limit else 'size unknown'}): the "
            "server refused it and closed the connection; it did not run and was not sent "
            "again, and the server stays in use. Send less per statement, or raise "
            "max_allowed_packet on the servers"
        )
        if trx != NO_TRANSACTION:
            message += "; " + lost_transaction("", "", sent=False)
        raise err.OperationalError(ER_NET_PACKET_TOO_LARGE, message) from exc

    def _raise_if_lost(self, backend: Backend, exc: err.MySQLError, refusal: str) -> None:
        if health.is_disconnect(exc):
            trx = self._core.trx_context()
            why = _quarantine_note(backend)
            self._lost(backend, exc)
            raise self._lost_error(backend, exc, refusal, trx, why=why) from exc

    def _healthy(self) -> tuple[str, ...]:
        """The slaves neither failed on this connection nor quarantined in the process."""
        failed = self._core.failed
        down = health.down
        if not failed and not down:
            return self._slave_names
        by_name = self._by_name
        return tuple(
            n for n in self._slave_names if n not in failed and by_name[n].address not in down
        )

    # ---------------------------------------------------------------- PEP 249 and PyMySQL API

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
        """Return a new Cursor (PEP 249); *cursorclass* is a PyMySQL cursor class."""
        self._check_open()
        return Cursor(self, cursorclass or self._cursorclass)

    def commit(self) -> None:
        """Commit on every backend with an open transaction (PEP 249 .commit()).

        A connection lost on the way raises OperationalError naming the server and saying
        whether the transaction did not commit (the connection broke before COMMIT was sent)
        or its outcome is unknown (COMMIT sent, no reply); the transaction is over either way.
        """
        self._enter()
        try:
            self._end_transaction("commit")
        finally:
            self._leave()

    def rollback(self) -> None:
        """Roll back on every backend with an open transaction (PEP 249 .rollback()).

        Never fails because a backend connection is gone: the server rolled that transaction
        back when the connection broke; the connection is dropped and a warning logged.
        """
        self._enter()
        try:
            self._end_transaction("rollback")
        finally:
            self._leave()

    def _end_transaction(self, how: str) -> None:
        self._check_open()
        failure: err.OperationalError | None = None
        pinned = self._pinned
        if pinned is not None and pinned.conn is None:
            if how == "commit":
                failure = err.OperationalError(
                    health.CR_SERVER_LOST,
                    f"commit: {pinned.info}: the transaction open there was lost with its "
                    "connection earlier and did not commit",
                )
            else:
                logger.warning(
                    "rollback: the transaction open on %s was lost with its connection "
                    "earlier; the server rolled it back",
                    pinned.info,
                )
        for b in self._open_backends():
            if b.dirty or b.in_transaction or b is pinned:
                lost = self._end_on(b, how)
                failure = failure or lost
        self._core.ended()
        if failure is not None:
            raise failure

    def _end_on(self, b: Backend, how: str) -> err.OperationalError | None:
        """COMMIT or ROLLBACK on *b*; the error to raise if its connection was lost."""
        conn = b.conn
        assert conn is not None
        try:
            if how == "rollback":
                conn.rollback()
            elif driver.peer_closed(conn):
                # The server closed it while idle: COMMIT would be lost, so it is not sent.
                raise err.OperationalError(
                    health.CR_SERVER_GONE_ERROR, "the server closed the connection"
                )
            else:
                conn.commit()
        except err.MySQLError as exc:
            if not health.is_disconnect(exc):
                b.dirty = False
                raise
            sent = not driver.not_sent(exc)
            why = _quarantine_note(b)
            self._lost(b, exc)
            if how == "rollback":
                logger.warning(
                    "rollback: the connection to %s was lost (%s); the server rolled the "
                    "transaction back",
                    b.info,
                    _detail(exc),
                )
                return None
            return err.OperationalError(
                exc.args[0] if isinstance(exc.args[0], int) else health.CR_SERVER_LOST,
                f"commit: {b.info}: connection lost ({_detail(exc)}); {why}{lost_commit(sent)}",
            )
        b.dirty = False
        if how == "commit" and b.role == "master":
            self._committed(b)
        return None

    def begin(self, read_only: bool = False) -> None:
        """Start a transaction; every statement runs where it started until commit/rollback.

        It starts on the master, or with ``read_only=True`` and trx_stickiness "on" on one slave.
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
        if age is not None and (level != "eventual" or not isinstance(age, int) or age < 0):
            raise err.ProgrammingError(
                "set_qos(): age is a number of seconds >= 0, with 'eventual' only"
            )
        if gtid is not None:
            if level != "session":
                raise err.ProgrammingError("set_qos(): gtid goes with 'session' only")
            if not (is_valid_gtid(gtid, "mariadb") or is_valid_gtid(gtid, "mysql")):
                raise err.ProgrammingError(f"set_qos(): not a GTID: {gtid!r}")
            core.gtid.require(gtid, 0.0)
        core.set_policy(core.policy._replace(qos=level, age=age))
        if level == "session" and not core.track_gtids:
            core.track_gtids = True
            master = self._master_backend
            if master is not None and master.conn is not None:
                self._setup_tracking(master, gtids=True, state=False)
        if age is not None:
            self._watch_replicas(wait=True)

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
        core.set_tracker(Tracker(mode, tuple(self._by_name)))
        for b in self._open_backends():
            self._setup_tracking(b, gtids=False, state=True)

    def session_state(self) -> dict[str, dict[str, Any]]:
        """What each backend's session holds, as msplugin tracked it, for debugging.

        Per backend: session settings the application set there (statement texts), names of
        user variables, temporary tables and prepared statements, LOCK TABLES, the number of
        named locks, and whether the server reported changes no statement explains. Never
        variable values. Empty entries when session_state is "off".
        """
        tracker = self._core.tracker
        if tracker is None:
            return {name: {} for name in self._by_name}
        return tracker.snapshot()

    def last_gtid(self) -> str | None:
        """The GTID of this connection's last write (None if unknown), to carry to later reads."""
        return self._core.gtid.last_write

    def close(self) -> None:
        """Close every backend connection (PEP 249 .close()); a second close raises Error.

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
            for b in self._by_name.values():
                b.close()
        finally:
            self._leave()
        logger.info("facade connection for group %r closed", self.group.name)

    @property
    def open(self) -> bool:
        """True until close()."""
        return not self._core.closed

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._core.closed:
            self.close()

    def _broadcast(self, call: Callable[[Any], object]) -> None:
        """Apply an API setting to every open backend. A backend whose connection is lost is
        dropped (the setting is recorded and applied when it reconnects); a transaction open
        there is lost, and the next statement of it says so."""
        for b in self._open_backends():
            try:
                call(b.conn)
            except err.MySQLError as exc:
                if not health.is_disconnect(exc):
                    raise
                logger.warning("%s: connection lost (%s); dropped", b.info, _detail(exc))
                self._lost(b, exc)

    def autocommit(self, value: bool) -> None:
        """Set autocommit on every open backend and on those opened later."""
        self._check_open()
        self._enter()
        try:
            value = bool(value)
            self._broadcast(lambda conn: conn.autocommit(value))
            self._overrides["autocommit"] = value
            pinned = self._pinned
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
        master = self._master_backend
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
            sql = _isolation_sql(name)
            self._broadcast(lambda conn: conn.query(sql))
            self._isolation = name
        finally:
            self._leave()

    def character_set_name(self) -> str:
        """The connection character set every backend uses (as PyMySQL names it)."""
        return str(self._overrides.get("charset") or self._defaults.get("charset") or "utf8mb4")

    def ping(self, reconnect: bool = False) -> None:
        """Check that the servers answer (PyMySQL's ping()).

        Every open backend is pinged; one that does not answer is dropped (reconnected when a
        statement needs it). With none open, the master is connected. *reconnect*: a closed
        connection is opened again, and a lost backend is not an error; without it a closed
        connection raises Error("Already closed") and a lost backend OperationalError.
        """
        if self._core.closed:
            if not reconnect:
                raise err.Error("Already closed")
            self.connect()
            return
        self._enter()
        try:
            self._ping(reconnect)
        finally:
            self._leave()

    def _ping(self, reconnect: bool) -> None:
        failure: err.MySQLError | None = None
        for b in self._open_backends():
            assert b.conn is not None
            try:
                b.conn.ping(False)
            except err.MySQLError as exc:
                if not health.is_disconnect(exc):
                    raise
                self._lost(b, exc)
                failure = failure or err.OperationalError(
                    exc.args[0] if isinstance(exc.args[0], int) else health.CR_SERVER_LOST,
                    f"ping: {b.info}: connection lost ({_detail(exc)}); dropped",
                )
        if failure is not None and not reconnect:
            raise failure
        if not self._open_backends():
            self._master()

    def insert_id(self) -> int:
        """The last insert id of the backend that ran the previous statement (0 before any)."""
        last = self._last_used
        return int(last.conn.insert_id()) if last is not None and last.conn is not None else 0  # type: ignore[no-untyped-call]

    # ------------------------------------------------ the rest of PyMySQL's Connection surface

    def _answering(self) -> Any:
        """The PyMySQL connection that answers for "the" server: the one that ran the last
        statement, else the master (connected if need be)."""
        self._check_open()
        last = self._last_used
        if last is not None and last.conn is not None:
            return last.conn
        return self._master().conn

    def _master_conn(self) -> Any:
        self._check_open()
        return self._master().conn

    def affected_rows(self) -> int:
        """Rows the last statement changed, on the server that ran it (0 before any)."""
        last = self._last_used
        return int(last.conn.affected_rows()) if last is not None and last.conn is not None else 0  # type: ignore[no-untyped-call]

    def thread_id(self) -> int:
        """The server thread id of the session that ran the last statement (else the
        master's)."""
        return int(self._answering().thread_id())

    def get_host_info(self) -> str:
        """How the server that ran the last statement (else the master) is reached."""
        return str(self._answering().get_host_info())

    @property
    def host_info(self) -> str:
        return self.get_host_info()

    def get_server_info(self) -> str:
        """The master's server version string (the master is connected if need be)."""
        return str(self._master_conn().get_server_info())

    @property
    def server_version(self) -> str:
        return self.get_server_info()

    def get_proto_info(self) -> int:
        """The protocol version of the master's connection."""
        return int(self._master_conn().get_proto_info())

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
        master = self._master_backend
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

    def connect(self) -> None:
        """Open the connection again after close(), or connect now (PyMySQL's connect()).

        The master is connected, and with lazy_connections false every slave as well.
        """
        if self._core.closed:
            self._core.reopened()  # new sessions: nothing of the old ones is left
            logger.info("facade connection for group %r opened again", self.group.name)
        self._enter()
        try:
            if self.group.lazy_connections:
                self._master()
            else:
                self._connect_all()
        finally:
            self._leave()

    @property
    def last_used(self) -> ServerInfo | None:
        """The server that ran the previous statement; None before the first."""
        return self._last_used.info if self._last_used is not None else None

    def explain(self, sql: str) -> Explanation:
        """Return where *sql* would run and why; nothing is executed or connected."""
        decided = self._core.decided(sql, self._classifier)
        c, d = decided.c, decided.d
        e = self._explain_routing(c, d)
        tracker = self._core.tracker
        if tracker is None:
            return e
        # No replica picked yet (random): judge state on the first, as a stand-in.
        chosen = e.server or (self._slave_names[0] if e.role == "slave" else None)
        if chosen is None:
            return e
        plan = tracker.plan(
            sql,
            decided.eff,
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
        age = self._core.policy.age
        if d.consistency == "session" and c.read:
            reason += "; service level session: a replica that has this connection's writes, else the master"
        elif d.consistency == "eventual" and age is not None:
            reason += f"; service level eventual: a replica at most {age} s behind"
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


def _reply(backend: Backend, cur: pymysql.cursors.Cursor | None) -> Reply:
    """The facts of *backend*'s last reply that the core learns from (PyMySQL keeps the OK
    packet's tail, which holds the session-state block, in ``_result.message``)."""
    conn = backend.conn
    if conn is None:
        return Reply(0)
    status: int = conn.server_status  # type: ignore[attr-defined]
    result = conn._result  # type: ignore[attr-defined]
    if result is None:
        return Reply(status)
    executed = getattr(cur, "_executed", None) if cur is not None else None
    text = executed if isinstance(executed, str) else ""
    message = result.message
    # A write that returned rows (MariaDB's RETURNING): its EOF packet carries no state.
    returned = message is None and cur is not None and _RETURNING.search(text) is not None
    return Reply(status, message, bool(result.has_next), returned, text)


def _fixed_by(c: Classification, target: Target) -> str:
    """Why session state may not move this statement to another backend ("" if it may)."""
    if target is Target.TRANSACTION:
        return "a transaction is open there"
    if c.hinted:
        return "a hint chose the server"
    return ""


def _isolation_sql(level: str) -> str:
    """The statement setting a session's isolation *level* (one of _ISOLATION_LEVELS)."""
    return f"SET SESSION TRANSACTION ISOLATION LEVEL {level}"


def _quarantine_note(backend: Backend) -> str:
    """Why the process already quarantined *backend*'s server (hung, refused), for a message
    about a connection to it that broke; "" if it is not quarantined."""
    why = health.down.get(backend.address)
    return f"the server was quarantined ({why}); " if why else ""


def _first_value(row: Any) -> Any:
    """The first column of a row of any cursor class (a tuple, or a dict by column name)."""
    return next(iter(row.values())) if isinstance(row, Mapping) else row[0]


def _drain(cur: pymysql.cursors.Cursor) -> None:
    """Skip the results left of a multi-statement reply. A server error in one (the read on
    a replica that lacks a just-created table) ends the reply: the read runs on the master
    anyway. A lost connection is raised."""
    try:
        while cur.nextset():
            cur.fetchall()  # unbuffered cursors: read to the end before the next result
    except err.MySQLError as exc:
        if health.is_disconnect(exc):
            raise


def _detail(exc: BaseException) -> str:
    """What a driver error says, for a message (PyMySQL's closed-socket error says nothing)."""
    text = str(exc.args[-1]) if exc.args else ""
    return text or "the connection was already closed"


def _statement_size(cur: pymysql.cursors.Cursor | None, query: str, args: Any) -> int:
    """Bytes of the COM_QUERY packet a statement took (only on failure paths: it encodes)."""
    sql = query
    if cur is not None and args is not None:
        try:
            sql = cur.mogrify(query, args)
        except Exception:  # an unusable cursor: the template's size is a lower bound
            sql = query
    encoding = getattr(cur.connection if cur is not None else None, "encoding", None) or "utf8"
    return len(sql.encode(encoding, "replace")) + 1


def _cut(query: str) -> str:
    return query if len(query) <= 200 else query[:200] + "..."
