"""Carry out the core's decisions for one facade connection: route a statement to a backend,
and hand its reply back to the core.

The core (msplugin.core) decides from values; the router does what needs a connection: it
connects the chosen backend (msplugin.backends fails over when it cannot), replays session
settings there under session_state sync, runs mysqlnd_ms's GTID injection statements, and
reads the facts of each reply the core learns from. msplugin.gtid_reads chooses a session
read's server and runs its GTID check; msplugin.recovery decides what happens after a
failure. The cursor runs the statement itself.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import TYPE_CHECKING, Any, Final

from pymysql import err

from msplugin import driver, health
from msplugin._types import Level, Role, Stat
from msplugin.backends import Backend, Backends, consumed
from msplugin.classify import Classification, cut_sql
from msplugin.config import GroupConfig
from msplugin.consistency import SESSION_STATE_CHANGED
from msplugin.core import AUTOCOMMIT, ConnectionCore, Reply
from msplugin.errors import NoBackendAvailable, RoutingError, StateDivergenceWarning
from msplugin.filters import UserCallback, UserPicker, make_narrower
from msplugin.follow import follow, wait_for_master
from msplugin.gtid_reads import session_backend
from msplugin.health import down as _down
from msplugin.memo import Decided, Memo
from msplugin.monitor import not_replicating as _not_replicating
from msplugin.optimistic import keep
from msplugin.port import Port
from msplugin.routing import NO_TRANSACTION, Decision, Target
from msplugin.state import NOTHING, Effects
from msplugin.stats import Stats
from msplugin.step import Step
from msplugin.topology import View

if TYPE_CHECKING:
    from msplugin.topology_monitor import Watch

__all__ = ["Router", "Step", "fixed_by"]

logger = logging.getLogger("msplugin.connection")
route_logger = logging.getLogger("msplugin.routing")
state_logger = logging.getLogger("msplugin.state")


class Router:
    """Routes the statements of one facade connection (see the module)."""

    def __init__(
        self,
        group: GroupConfig,
        *,
        autocommit: bool,
        defaults: dict[str, Any],
        overrides: dict[str, Any],
        pick_server: UserCallback | None,
        user_multi: bool,
        port: Port,
    ) -> None:
        self.group = group
        self.stats = Stats()
        self.classifier = group.classifier
        self.timed = group.load_balancer.name == "fastest_response"
        # The state and the rules: where statements go, transactions, GTIDs, session state.
        self.core = ConnectionCore(
            group, autocommit=autocommit, memo_able=not self.timed, stats=self.stats
        )
        self.port = port
        self.backends = Backends(
            group,
            self.core,
            self.stats,
            defaults=defaults,
            overrides=overrides,
            pick_server=pick_server,
            port=port,
        )
        self.picker = self.backends.picker
        self.by_name = self.backends.by_name
        # user, user_multi and node_groups see each statement: they get its context.
        self._user = self.picker if isinstance(self.picker, UserPicker) else None
        self._narrower = make_narrower(group.filters, f"group {group.name!r}")
        self.custom = self._user is not None or self._narrower is not None
        if self.custom:
            self.core.remembers = False  # every statement must reach the filters
            self.core.moved()
        self._allowed: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self.master_names = tuple(s.name for s in group.masters)
        self.slave_names = tuple(s.name for s in group.slaves)
        self._user_multi = user_multi
        self.recalled: Backend | None = None  # recall()'s pick, for statement.recalled()
        self.hit: Memo | None = None  # recall()'s memo of the statement in hand
        # topology.discover: the process's watch of the group, and the roles last taken.
        self.topology: Watch | None = None
        self.view: View | None = None

    def use_topology(self, watch: Watch) -> None:
        """Follow *watch*'s roles (topology.discover): at every statement, on both paths."""
        self.topology = watch
        follow(self)
        self.backends.awaiting = lambda: wait_for_master(self)
        self.backends.master_failed = watch.recheck
        self.recall = self.recall_following  # type: ignore[method-assign]

    def recall_following(self, query: str, unbuffered: bool) -> Backend | None:
        """recall(), after taking changed roles (only with topology.discover, so that the
        short path of every other group pays nothing for it)."""
        watch = self.topology
        if watch is not None and watch.view is not self.view:
            follow(self)
        return Router.recall(self, query, unbuffered)

    def roles_changed(self) -> None:
        """The servers' roles changed (msplugin.follow): take the new lists and picker."""
        self.master_names = self.core.master_names
        self.slave_names = self.core.slave_names
        self.picker = self.backends.picker
        self._user = self.picker if isinstance(self.picker, UserPicker) else None

    def recall(self, query: str, unbuffered: bool) -> Backend | None:
        """The connected backend *query* runs on now if the core remembered it, with nothing
        but the statement sent (the edge's short path; *hit* is its memo). None when
        statement.recalled() must take it: not remembered, a session read (the GTID state
        chooses), a read that must avoid a server, a server to connect, an optimistic
        start on a replica session in autocommit mode (or an *unbuffered* cursor's: its rows
        cannot be kept); *recalled* keeps the pick for it. A start on a session with
        autocommit off, an ORM's, is sent as is: the edge then skips core.ran() and
        ran_remembered() opens the transaction."""
        memo = self.hit = self.core.memo.get(query)
        if memo is None:
            return None
        server = memo.server
        if memo.candidates and (
            server is None or server != self.picker.chosen or _down or _not_replicating
        ):
            if memo.session:
                self.recalled = None
                return None
            backend = self.recalled = self.remembered_read(memo)  # picked now
            if backend is None:
                return None
        else:
            backend = self.recalled = self.by_name[server]  # type: ignore[index]
        conn = backend.conn
        if conn is None or (memo.start and (unbuffered or conn.server_status & AUTOCOMMIT)):
            return None
        if memo.dirty:
            backend.dirty = True
        if route_logger.isEnabledFor(logging.DEBUG):
            route_logger.debug("%s -> %s: %s", cut_sql(query), backend.name, memo.reason)
        return backend

    def remembered_read(self, memo: Memo) -> Backend | None:
        """The slave a remembered read goes to, picked now; None when it must be routed the
        full way (a server of this group is quarantined or not replicating: reads avoid it)."""
        if (_down or _not_replicating) and self.backends.avoiding():
            return None
        return self.backends.by_name[self.picker.pick(memo.candidates)]

    async def route(self, query: str, picked: Backend | None = None) -> Step:
        """Choose the backend for *query*, connecting it (and failing over) if need be, and
        replaying session settings there under session_state sync; the statement itself is
        not sent. *picked*: the slave a remembered route picked but found unconnected."""
        core = self.core
        if core.closed:
            raise err.InterfaceError(0, "connection is closed")
        if self.topology is not None and self.topology.view is not self.view:
            follow(self)
        memo = core.memo
        decided = core.decided(query, self.classifier)
        c, d, eff = decided.c, decided.d, decided.eff
        target, reason, stat, check = d.target, d.reason, d.stat, None
        plain = decided.memo_ok and not self.custom
        if self.custom:
            self.filter_context(query, target)
        if stat is Stat.OPTIMISTIC_STARTED:
            backend, reason, stat, check = await self._optimistic_start(d, c, picked)
            plain = False
        elif target is Target.SLAVE:
            backend, reason, check, simple = await self._slave_target(d, c, picked)
            # A session read is remembered wherever it went: it is routed again at each run.
            session = d.consistency == Level.SESSION
            plain = plain and simple and (backend.role == Role.SLAVE or session)
        elif target is Target.MASTER:
            backend = (
                await self.backends.master()
                if self._allowed is None
                else await self.allowed_master()
            )
        elif target is Target.TRANSACTION:
            backend = self.held(c)
            if backend.role == Role.SLAVE:
                reason = "read-only transaction open on this slave"
                stat = "use_slave_trx"
                plain = False
        else:
            backend = self.last(c)
        tracker = core.tracker
        if tracker is not None and (eff is not NOTHING or not tracker.idle(backend.name, query)):
            moved = await self.apply_state(query, c, backend, reason, target, eff)
            if moved[0] is not backend and moved[0].role == Role.MASTER:
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
            route_logger.debug("%s -> %s: %s", cut_sql(query), backend.name, reason)
        return Step(query, backend, decided, reason, check, memo if plain else None)

    async def _slave_target(
        self, d: Decision, c: Classification, picked: Backend | None
    ) -> tuple[Backend, str, str | None, bool]:
        """A statement the decision sends to a slave: (backend, reason, GTID check, whether
        nothing but the text and the state chose it)."""
        core = self.core
        if (
            core.policy.age is not None
            or core.failed
            or self._allowed
            or ((_down or _not_replicating) and self.backends.avoiding())
        ):
            return *await self.read_backend(d, c, picked), False
        if d.consistency == Level.EVENTUAL:
            return await self.backends.slave(self.slave_names, picked), d.reason, None, True
        if c.read:  # session, nothing to filter
            return *await session_backend(self, d, self.slave_names), True
        return *await self.read_backend(d, c), True

    async def _optimistic_start(
        self, d: Decision, c: Classification, picked: Backend | None
    ) -> tuple[Backend, str, str, str | None]:
        """The replica an optimistic transaction starts on, or the master when none may
        serve it: (backend, reason, statistic, the GTID check the replica must pass first).
        Under session consistency the replica is chosen as for a session read. *picked*: the
        replica a remembered start picked but found unconnected."""
        candidates, _ = self.backends.eligible(d, self.allowed_slaves())
        if self.core.retry_on_master():
            why = f"{d.reason}; the last one ended in a conflict (its retry, most likely)"
        elif candidates:
            if d.consistency == Level.SESSION:
                backend, reason, check = await session_backend(self, d, candidates)
            else:
                if picked is not None and picked.name not in candidates:
                    picked = None
                backend, reason, check = (
                    await self.backends.slave(candidates, picked),
                    d.reason,
                    None,
                )
            if backend.role == Role.SLAVE:
                return backend, reason, d.stat, check
            why = reason
        else:
            why = self.no_replica(d)
        master = (
            await self.backends.master() if self._allowed is None else await self.allowed_master()
        )
        return master, f"{why}: the transaction runs on the master", "trx_master_forced", None

    def held(self, c: Classification) -> Backend:
        """The backend holding the open transaction, or a clear error if it was lost."""
        backend = self.pinned
        assert backend is not None
        if backend.conn is None:
            what = f"ended: {backend.gone}" if backend.gone else "was lost with its connection"
            raise err.OperationalError(
                health.CR_SERVER_GONE_ERROR,
                f"the transaction open on {backend.info} {what}; "
                "roll back and start again; nothing was sent",
            )
        return backend

    def last(self, c: Classification) -> Backend:
        """The last used backend, for a last_used hint (or a statement classified so)."""
        backend = self.last_used
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

    def began(self, backend: Backend, query: str, args: Any, decided: Decided, cur: Any) -> bool:
        """*query* opened an optimistic transaction on *backend*: the core holds it, and it
        keeps the read's outcome. True: the caller runs inject() (see after())."""
        conn = backend.conn
        assert conn is not None
        plain = not conn.server_status & SESSION_STATE_CHANGED and decided.eff is NOTHING
        trx = self.core.optimistic_began(backend.name, plain)
        inject = (
            False if plain else self.after(Step(query, backend, decided, decided.d.reason), cur)
        )
        keep(trx, query, args, driver.result_facts(cur))
        return inject

    def step(self, memo: Memo, backend: Backend, query: str) -> Step:
        """The Step of a remembered statement that ran on *backend*, for the full path's
        learning or recovery."""
        return Step(query, backend, memo.decided, memo.reason, None, self.core.memo)

    def ran_remembered(self, memo: Memo, backend: Backend, query: str, args: Any, cur: Any) -> bool:
        """A remembered statement ran by the short path and its reply differs from the
        remembered one (core.ran() said so), or it opened an optimistic transaction (the
        edge asks core.ran() nothing then): learn the GTID of a write from its OK packet,
        learn the full way, or open the transaction. True: the caller runs inject() (see
        after())."""
        if memo.start:
            # core.hit(), inlined (once per unit of an ORM): counted as ran() counts; a
            # replica's session, so nothing written.
            memo.hits += 1
            self.core.last_used = backend.name
            return self.began(backend, query, args, memo.decided, cur)
        conn = backend.conn
        assert conn is not None
        status: int = conn.server_status
        result = conn._result
        message = result.message if result is not None else None
        if self.core.ran_gtid(memo, backend.name, status, message):
            # consumed(backend), inlined: this runs on every write under session consistency
            conn.server_status = status & ~SESSION_STATE_CHANGED
            return False
        return self.after(self.step(memo, backend, query), cur)

    def step_on(self, step: Step, backend: Backend) -> Step:
        """*step* as run on *backend* instead (a failed GTID check sent it to the master)."""
        return Step(step.sql, backend, step.decided, step.reason)

    def filter_context(self, query: str, target: Target) -> None:
        """user, user_multi, node_groups: hand them the statement; narrow the candidates."""
        core = self.core
        ctx = (self.group.name, query, core.last_used, core.trx_context() != NO_TRANSACTION)
        self._allowed = None
        if target is not Target.SLAVE and target is not Target.MASTER:
            return  # a transaction or a last_used hint holds the statement where it is
        masters, slaves = self.master_names, self.slave_names
        if self._narrower is not None:
            self._narrower.context = ctx
            masters, slaves = self._narrower.narrow(masters, slaves)
        if self._user is not None:
            self._user.context = ctx
            self._user.masters = masters
            if target is Target.MASTER:
                masters = (self._user.choose(masters, ()),)
        self._allowed = (masters, slaves)

    async def allowed_master(self) -> Backend:
        """The master when filters narrowed the masters to *self._allowed*."""
        assert self._allowed is not None
        only = self._allowed[0]
        if not only:
            raise RoutingError(
                f"group {self.group.name!r}: the filters left no master (and no slave, for a "
                "read) for this statement; nothing was sent"
            )
        return await self.backends.master(only=only)

    def after(self, step: Step, cur: Any = None) -> bool:
        """Learn from the reply to *step*'s statement (the core decides what it means), and
        remember its route when nothing but the text and the state decided it. True: a write
        committed and the configuration has global_transaction_id_injection statements: the
        caller runs inject() (I/O; learned() does both)."""
        core = self.core
        backend = step.backend
        memo = step.memo
        try:
            reply = _reply(backend, cur)
            inject = core.learn(step.decided.c, step.decided.eff, backend.name, reply)
            if reply.status & SESSION_STATE_CHANGED:
                consumed(backend)
        finally:
            core.moved()
        if memo is not None:
            # A read is picked again each time, but for random once's pick, which is checked
            # against the picker's at each run (one that had to avoid a server changes it).
            d = step.decided.d
            fixed = d.target is not Target.SLAVE or (
                backend.name == self.picker.chosen and d.consistency != Level.SESSION
            )
            read = step.decided.d.target is Target.SLAVE
            core.remember(
                memo,
                step.sql,
                step.decided,
                step.reason,
                backend.name,
                self.slave_names if read else (),
                fixed,
                reply.status,
            )  # fmt: skip
        return inject

    async def learned(self, step: Step, cur: Any = None) -> None:
        """after(), and the injection statements it asks for."""
        if self.after(step, cur):
            await self.inject(step.backend)

    def committed(self, backend: Backend) -> bool:
        """commit() committed on master *backend*: its GTID, as after a committed write.
        True: the caller runs inject() (global_transaction_id_injection)."""
        core = self.core
        if not core.track_gtids and core.injection is None:
            if not core.gtid.untracked_write:  # else nothing to learn: known untracked
                core.learn_gtid(backend.name, None, committed=True)
            return False
        reply = _reply(backend, None) if core.track_gtids else None
        core.learn_gtid(backend.name, reply, committed=True)
        return core.injection is not None

    async def inject(self, backend: Backend) -> None:
        """A write committed on *backend*: run mysqlnd_ms's global_transaction_id_injection
        statements, if the configuration has them."""
        injection = self.core.injection
        if injection is None:
            return
        if injection.fetch_last_gtid and not self.core.track_gtids:
            gtid = await self.run_injection(backend, injection.fetch_last_gtid, "gtid_fetch")
            if gtid:
                self.core.gtid_written(gtid, backend.name)
        if injection.on_commit:
            await self.run_injection(backend, injection.on_commit, "gtid_on_commit")

    async def run_injection(self, backend: Backend, sql: str, stat: str) -> str | None:
        """Run a mysqlnd_ms global_transaction_id_injection statement; return its first value."""
        injection = self.core.injection
        assert backend.conn is not None and injection is not None
        self.stats.counts[stat] += 1
        try:
            row = await self.port.query(backend.conn, sql)
        except err.MySQLError as exc:
            if injection.report_error:
                raise
            logger.warning(
                "global_transaction_id_injection statement failed on %s: %s", backend.info, exc
            )
            return None
        return None if not row or row[0] is None else str(row[0])

    async def apply_state(
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
        tracker = self.core.tracker
        assert tracker is not None
        master = self.backends.master_name()
        plan = tracker.plan(
            query, eff, backend.name, read=c.read, fixed=fixed_by(c, target), master=master
        )
        if not (plan.move_to or plan.warnings or plan.replay or plan.error):
            return backend, reason
        for message in plan.warnings:
            self.warn_state(query, message)
        if plan.error:
            raise RoutingError(f"{cut_sql(query)}: {plan.error}; nothing was sent")
        if plan.move_to:
            backend = await self.backend_named(plan.move_to)
            reason = f"{reason}; {plan.reason}"
            self.stats.counts[Stat.STATE_MOVED] += 1
        if plan.replay:
            await self.replay(backend, plan.replay)
        return backend, reason

    def warn_state(self, query: str, message: str) -> None:
        text = f"{cut_sql(query)}: {message}"
        self.stats.counts[Stat.STATE_WARNINGS] += 1
        state_logger.warning("%s", text)
        warnings.warn(text, StateDivergenceWarning, stacklevel=outside_level())

    async def backend_named(self, name: str) -> Backend:
        """The backend called *name*, connected ("": the master, none known yet)."""
        if not name or self.backends.by_name[name].role == Role.MASTER:
            return await self.backends.master()
        backend = self.backends.by_name[name]
        if backend.conn is None:
            await self.backends.open(backend, lazy=True)
        return backend

    async def replay(self, backend: Backend, statements: tuple[str, ...]) -> None:
        """Sync: bring *backend*'s session settings up to the application's before it runs."""
        tracker = self.core.tracker
        assert tracker is not None and backend.conn is not None
        statement = ""
        try:
            for statement in statements:
                await self.port.query(backend.conn, statement)
        except err.MySQLError as exc:
            raise err.OperationalError(
                exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0,
                f"session_state sync: replaying {cut_sql(statement)!r} on {backend.name} failed "
                f"({exc.args[-1]}); the statement was not sent",
            ) from exc
        tracker.replayed(backend.name)
        self.stats.counts[Stat.STATE_REPLAYED] += len(statements)
        state_logger.debug("replayed %d session setting(s) on %s", len(statements), backend.name)

    async def read_backend(
        self, d: Decision, c: Classification, picked: Backend | None = None
    ) -> tuple[Backend, str, str | None]:
        """The backend for a read the decision sends to a slave, the reason to log, and the
        GTID check a session read needs there. *picked*: a remembered route's pick, kept if
        it is still a candidate."""
        candidates, stale = self.backends.eligible(d, self.allowed_slaves())
        if candidates:
            if d.consistency != Level.SESSION or not c.read:
                keep = picked if picked is not None and picked.name in candidates else None
                return await self.backends.slave(candidates, keep), d.reason, None
            return await session_backend(self, d, candidates)
        age = self.core.policy.age
        reason = self.no_replica(d)
        if self.group.failover.strategy == "disabled":
            if stale:
                return *await self.stale_slave(stale, reason, "failover is disabled"), None
            raise NoBackendAvailable(
                f"group {self.group.name!r}: {reason} and failover is disabled; nothing was sent"
            )
        try:
            master = (
                await self.backends.master()
                if self._allowed is None
                else await self.allowed_master()
            )
        except NoBackendAvailable as exc:
            if stale:
                return *await self.stale_slave(stale, reason, str(exc.args[-1])), None
            raise NoBackendAvailable(
                f"group {self.group.name!r}: {reason}; and {exc.args[-1]}"
            ) from exc
        self.stats.counts["use_master_age" if age is not None else "use_master_failover"] += 1
        return master, reason + ": the master serves it", None

    def no_replica(self, d: Decision) -> str:
        """Why no replica can serve a read the decision sends to a slave."""
        age = self.core.policy.age
        if age is not None and d.consistency == Level.EVENTUAL:
            return f"{d.reason}; no replica within age {age} s"
        if self._allowed is not None and not self._allowed[1]:
            return f"{d.reason}; the filters left no slave"
        return f"{d.reason}; no replica can serve it ({self.backends.unavailable()})"

    def allowed_slaves(self) -> tuple[str, ...] | None:
        """The slaves the filters left for the statement in hand (None: no filter narrows)."""
        return self._allowed[1] if self._allowed is not None else None

    def allowed_masters(self) -> tuple[str, ...] | None:
        """The masters the filters left for the statement in hand (None: no filter narrows)."""
        return self._allowed[0] if self._allowed is not None else None

    async def stale_slave(
        self, stale: tuple[str, ...], reason: str, why: str
    ) -> tuple[Backend, str]:
        """No replica replicates and the master cannot serve: a replica that stopped
        replicating is better than no answer (MaxScale's "stale slave")."""
        self.stats.counts[Stat.USE_SLAVE_STALE] += 1
        return (
            await self.backends.slave(stale),
            f"{reason}; the master cannot serve it ({why}): a replica that is not replicating does",
        )

    @property
    def last_used(self) -> Backend | None:
        name = self.core.last_used
        return self.backends.by_name[name] if name is not None else None

    @property
    def pinned(self) -> Backend | None:
        name = self.core.pinned
        return self.backends.by_name[name] if name is not None else None


_RETURNING: Final = re.compile(r"\bRETURNING\b", re.IGNORECASE)


def _reply(backend: Backend, cur: Any) -> Reply:
    """The facts of *backend*'s last reply that the core learns from (PyMySQL keeps the OK
    packet's tail, which holds the session-state block, in ``_result.message``)."""
    conn = backend.conn
    if conn is None:
        return Reply(0)
    status: int = conn.server_status
    result = conn._result
    if result is None:
        return Reply(status)
    executed = getattr(cur, "_executed", None) if cur is not None else None
    text = executed if isinstance(executed, str) else ""
    message = result.message
    # A write that returned rows (MariaDB's RETURNING): its EOF packet carries no state.
    returned = message is None and cur is not None and _RETURNING.search(text) is not None
    return Reply(status, message, bool(result.has_next), returned, text)


_PACKAGE: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep


def outside_level() -> int:
    """The stack level, for warnings.warn() called by the caller, of the application's frame
    that called into msplugin: the flows nest differently on each path and edge."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def fixed_by(c: Classification, target: Target) -> str:
    """Why session state may not move this statement to another backend ("" if it may)."""
    if target is Target.TRANSACTION:
        return "a transaction is open there"
    if c.hinted:
        return "a hint chose the server"
    return ""
