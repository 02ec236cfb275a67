"""The facade connection's state as explicit values, and the decisions made from it.

Pure: no socket, thread, sleep or driver import. The edge (msplugin.connection) asks the core
where a statement goes, runs it, and hands the reply's facts back (``learn``); the core keeps
the transaction, the last used server, GTIDs and session state, and counts the statistics.

The cheap path: a statement decided once in a given state is remembered (a ``Memo``) in that
state's memo, keyed by its text. Every change of state goes through ``moved()``, the one
place that picks the memo of the new state (or none, when something other than the text and
the state decides routes: filters that see each statement, a lag limit, a failed server,
pending session state). A repeated statement then costs one dict lookup to route and one
status comparison to learn from, writes and transactions included.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final, NamedTuple, cast

from msplugin._types import Level, Role, Stat, TrxKind
from msplugin.classify import CACHE_MAX_LEN, Classification, classify
from msplugin.config import GroupConfig, GtidInjectionConfig
from msplugin.consistency import (
    CAUSAL_READ,
    SESSION_STATE_CHANGED,
    TRACK_SCHEMA,
    TRACK_STATE_CHANGE,
    TRACK_SYSTEM_VARIABLES,
    GtidState,
    gtid_from_session_state,
    gtid_only,
    is_valid_gtid,
    schema_name,
    session_state_items,
    system_variable,
    wait_sql,
)
from msplugin.memo import NO_MEMO, Decided, Memo, MemoTable, StateKey
from msplugin.optimistic import Caps, Transaction, start_decision
from msplugin.optimistic_state import COMPLETED, OptimisticState
from msplugin.routing import AUTOCOMMIT_OFF, NO_TRANSACTION, OPEN, Policy, Target, decide
from msplugin.state import NOTHING, Effects, Tracker, effects
from msplugin.stats import Stats, fold_hits

__all__ = ["AUTOCOMMIT", "IN_TRANS", "ConnectionCore", "Reply"]

state_logger = logging.getLogger("msplugin.state")

# Server status bits (PyMySQL's SERVER_STATUS values, which are the protocol's).
IN_TRANS: Final = 1
AUTOCOMMIT: Final = 2
# Reads at these levels are remembered (a session read's server is chosen at each run).
_REMEMBERED_LEVELS: Final = (Level.EVENTUAL, Level.SESSION)
# A remembered statement's reply is compared on these bits only: the ones learning reads.
WATCH: Final = IN_TRANS | AUTOCOMMIT | SESSION_STATE_CHANGED
_CACHE_MAX: Final = 1024


class Reply(NamedTuple):
    """The facts of a reply that learning reads (the edge takes them from its driver)."""

    status: int
    message: bytes | None = None  # an OK packet's tail (session-state block); None: rows
    has_next: bool = False  # more results follow
    returned_rows: bool = False  # a write that returned rows (RETURNING): no GTID there
    executed: str = ""  # the text as sent, arguments interpolated (for replaying settings)


def configured_qos(group: GroupConfig) -> tuple[str, int | None]:
    """The service level and age limit the group's filters configure."""
    for f in group.filters:
        if f.name == "quality_of_service" and f.qos_level is not None:
            return f.qos_level, f.qos_age
    if group.global_transaction_id_injection is not None:
        return "session", None  # mysqlnd_ms configs set this up for read-your-writes
    return "eventual", None


class ConnectionCore(OptimisticState):
    """One facade connection's routing state and rules; see the module docstring (and
    msplugin.optimistic_state for optimistic transactions)."""

    def __init__(
        self, group: GroupConfig, *, autocommit: bool, memo_able: bool, stats: Stats
    ) -> None:
        self.group = group
        # "replication" or "galera": the group's cluster key, or what discovery found.
        self.cluster: str = group.cluster
        self.master_names = tuple(s.name for s in group.masters)
        self.slave_names = tuple(s.name for s in group.slaves)
        self.roles = {s.name: s.role for s in (*group.masters, *group.slaves)}
        qos, age = configured_qos(group)
        self.policy = Policy(
            trx_stickiness=group.trx_stickiness,
            master_on_write=group.master_on_write,
            qos=qos,
            age=age,
            has_slaves=bool(group.slaves),
        )
        self.sticky = group.trx_stickiness != "disabled"
        # trx_stickiness optimistic: a transaction whose first statement is a plain read
        # starts on a replica (msplugin.optimistic); the one open there, or None.
        self.optimistic_on = group.trx_stickiness == "optimistic" and bool(group.slaves)
        self.caps = Caps(group.optimistic.max_statements, group.optimistic.max_rows)
        self.optimistic: Transaction | None = None
        self.after_conflict = False  # see conflicted()
        self._resume: MemoTable | None = None  # see optimistic_began()
        self.deferred: str | None = None  # see defer()
        self.injection = group.global_transaction_id_injection
        # Native GTID tracking, unless a ported mysqlnd_ms config fetches GTIDs with its own SQL.
        self.track_gtids = qos == Level.SESSION and not (
            self.injection is not None and self.injection.fetch_last_gtid
        )
        self.session_configured = qos == Level.SESSION
        self.stats = stats
        self.counts = stats.counts
        # The state.
        self.autocommit = autocommit
        self.sql_autocommit_off = False  # SET autocommit=0 sent as SQL: the master's reply
        self.pinned: str | None = None  # the backend holding the open transaction
        self.xa = False
        self.wrote = False
        self.last_used: str | None = None
        self.failed: set[str] = set()
        self.closed = False
        self.gtid = GtidState()
        self.flavors: dict[str, str] = {}  # backend -> "mariadb" | "mysql", once connected
        self.tracker: Tracker | None = None
        if group.session_state != "off":
            self.tracker = Tracker(group.session_state, tuple(self.roles))
        # False: every statement takes the full path (the tests compare the two paths).
        self.remembers = memo_able and self.injection is None
        self._decided: dict[tuple[str, str, bool, bool], Decided] = {}
        # state -> text -> Memo; shared with the statistics, which count the memos' runs.
        self._memos = cast("dict[Any, MemoTable]", stats.remembered)
        self.memo: MemoTable = NO_MEMO
        self._key: StateKey | None = None
        self.moved()

    # ------------------------------------------------------------------ the state, in one place

    def trx_context(self) -> str:
        """No transaction, one open (pinned), or autocommit off (the next statement opens one)."""
        if self.pinned is not None:
            return OPEN
        if not self.autocommit or self.sql_autocommit_off or self.deferred is not None:
            return AUTOCOMMIT_OFF
        return NO_TRANSACTION

    def moved(self) -> None:
        """The state may have changed: take the memo of the new state, or none if more than
        the text and the state decides a route now."""
        self._resume = None  # an optimistic transaction ends in a state decided anew
        tracker = self.tracker
        if (
            not self.remembers
            or self.closed
            or self.policy.age is not None
            or self.failed
            or self.optimistic is not None
            or self.after_conflict  # a remembered start would put the retry on a replica
            or self.deferred is not None  # a state of one statement
            or (tracker is not None and not tracker.quiet())
        ):
            self.memo = NO_MEMO
            self._key = None
            return
        # What trx_context() and decide() read: a transaction opening or ending changes only
        # the first item (see _pin).
        self._key = (
            self.pinned,
            self.autocommit,
            self.sql_autocommit_off,
            self.wrote and self.policy.master_on_write,
            self.last_used is not None,
        )
        memo = self._memos.get(self._key)
        if memo is None:
            memo = self._memos[self._key] = MemoTable(self._key)
        self.memo = memo

    def _pin(self, name: str | None) -> None:
        """A transaction opened on *name* (None: ended) and nothing else changed: the memo
        of the state that differs in that alone (moved() without its checks)."""
        self.pinned = name
        if self._key is None:
            return  # nothing is remembered in this state, nor in that one
        memo = self.memo.pins.get(name)
        if memo is None:
            key = (name, *self._key[1:])
            memo = self._memos.get(key)
            if memo is None:
                memo = self._memos[key] = MemoTable(key)
            self.memo.pins[name] = memo
        self._key = memo.key
        self.memo = memo

    def forget_memos(self) -> None:
        """What remembered statements were decided under changed (the policy, the state
        tracking): decide everything again."""
        for memos in self._memos.values():
            fold_hits(memos, self.counts)
        self._memos.clear()
        self._decided.clear()
        self.moved()

    # ------------------------------------------------------------------ deciding

    def decided(self, sql: str, classifier: str) -> Decided:
        """Classification, decision and session effects of *sql* in the current state."""
        key = (sql, self.trx_context(), self.wrote, self.last_used is not None)
        found = self._decided.get(key)
        if found is not None:
            return found
        c = classify(sql, classifier)  # type: ignore[arg-type]
        d = decide(c, self.policy, key[1], key[2], key[3])
        if self.optimistic_on and key[1] == AUTOCOMMIT_OFF and d.target is Target.MASTER:
            d = start_decision(c, d, sql, self.policy.qos, self.caps)
        eff = effects(sql)
        memo_ok = (
            d.stat is not Stat.OPTIMISTIC_STARTED  # its server holds what it keeps: not remembered
            and eff is NOTHING
            and not c.trx
            and c.statements == 1
            and (
                d.target is Target.MASTER
                or d.target is Target.TRANSACTION
                # A session read is remembered too: its server is chosen again at each run
                # (the GTID state decides it), its classification is not.
                or (d.target is Target.SLAVE and d.consistency in _REMEMBERED_LEVELS and c.read)
            )
        )
        found = Decided(c, d, eff, memo_ok)
        if len(sql) <= CACHE_MAX_LEN:
            if len(self._decided) >= _CACHE_MAX:
                self._decided.clear()  # literals in the text: cheaper than an LRU
            self._decided[key] = found
        return found

    def remember(
        self,
        memo: MemoTable,
        sql: str,
        decided: Decided,
        reason: str,
        server: str,
        candidates: tuple[str, ...],
        fixed: bool,
        status: int,
    ) -> None:
        """*sql*, decided under *memo*'s state, ran on *server* and left *status*: remember
        it there if learning from it changed nothing but, maybe, pinned *server*."""
        if memo.key is None or len(sql) > CACHE_MAX_LEN:
            return
        pin = memo is not self.memo
        if pin and self._key != (server, *memo.key[1:]):
            return  # learning changed more than a pin: decided anew in the new state
        if len(memo) >= _CACHE_MAX:
            fold_hits(memo, self.counts)
            memo.clear()
        before = memo.get(sql)
        expect = status & (IN_TRANS | AUTOCOMMIT)  # a session-state block is always learned from
        if before is not None and before.expect == expect and not pin and not before.pin:
            return  # remembered already (a reply with a session-state block was learned from)
        entry = memo[sql] = Memo(
            decided,
            decided.d.stat if decided.d.target is not Target.TRANSACTION else "trx_master_forced",
            reason,
            server if fixed else None,
            candidates,
            expect,
            pin=pin,
            dirty=not self.autocommit,
            master=self.roles[server] == Role.MASTER,
        )
        if before is not None:
            entry.hits = before.hits  # remembered again: its runs still count

    def hit(self, memo: Memo, name: str) -> None:
        """A remembered statement ran on *name* and failed: count it (as ran() does)."""
        memo.hits += 1
        if memo.master:
            self.wrote = True
        self.last_used = name

    def ran(self, memo: Memo, name: str, status: int) -> bool:
        """A remembered statement ran on *name* and replied *status*: count it and learn
        from the reply; False if the reply differs from the remembered one or carries a
        session-state block (the edge then learns the full way)."""
        memo.hits += 1
        if memo.master:
            self.wrote = True  # in the memo's key when master_on_write makes it matter
        self.last_used = name
        if status & WATCH != memo.expect:
            return False
        tracker = self.tracker
        if tracker is not None:
            if memo.read:
                tracker.found_rows_home = name
            else:
                tracker.last_insert_home = name
        if memo.pin:
            table = self.memo.pins.get(name)
            if table is None:
                self._pin(name)
            else:  # _pin(), inlined: the statement that opens each transaction gets here
                self.pinned, self._key, self.memo = name, table.key, table
        return True

    def ran_session(self, memo: Memo, name: str, status: int) -> bool:
        """A remembered session read ran on *name* (counted by routed()): learn from the
        reply by one comparison; False if it differs (the edge then learns the full way)."""
        if status & WATCH != memo.expect:
            return False
        if self.tracker is not None:
            self.tracker.found_rows_home = name
        key = self._key
        if key is None or not key[4] or key[3] != (self.wrote and self.policy.master_on_write):
            self.moved()  # the first statement, or a read the master served (master_on_write)
        return True

    def ran_gtid(self, memo: Memo, name: str, status: int, message: bytes | None) -> bool:
        """ran() found a session-state block in the reply to a remembered write: True if
        the block reports this write's GTID and nothing else, which is learned here (every
        write's reply under session consistency); False: the edge learns the full way."""
        if (
            not memo.master
            or not self.track_gtids
            or not self.autocommit
            or self.xa
            or status & WATCH != memo.expect | SESSION_STATE_CHANGED
            or status & IN_TRANS
            or not message
        ):
            return False
        gtid = gtid_only(message)
        if not gtid:
            return False
        self.gtid_written(gtid, name)
        if self.tracker is not None:
            self.tracker.last_insert_home = name
        return True  # no pin: a reply that opened a transaction (IN_TRANS) never gets here

    def routed(self, name: str, role: str, stat: str) -> None:
        """The full path chose *name* (with statistic *stat*) for a statement about to run."""
        counts = self.counts
        counts[stat] += 1
        if role == Role.MASTER:
            counts[Stat.USE_MASTER] += 1
            if not self.wrote:
                self.wrote = True
        else:
            counts[Stat.USE_SLAVE] += 1
        self.last_used = name

    # ------------------------------------------------------------------ learning from replies

    def learn(self, c: Classification, eff: Effects, name: str, reply: Reply) -> bool:
        """Learn from the reply to a statement the full path ran on *name*: a transaction
        opened or ended, session state, the GTID of a write. True if a write committed (the
        edge then runs a mysqlnd_ms GTID injection statement, when one is configured)."""
        status = reply.status
        master = self.roles[name] == Role.MASTER
        tracker = self.tracker
        if tracker is not None:
            if eff is NOTHING and not status & SESSION_STATE_CHANGED and not c.trx:
                # The common statement: only where LAST_INSERT_ID()/FOUND_ROWS() live moves.
                if c.read:
                    tracker.found_rows_home = name
                else:
                    tracker.last_insert_home = name
            else:
                self._state_after(tracker, c, eff, name, reply)
        if master:
            # With autocommit off already, the master's saying so changes nothing: one state
            # (and one table of remembered routes) instead of two.
            self.sql_autocommit_off = self.autocommit and not status & AUTOCOMMIT
        if self.sticky:
            self._learn_transaction(c, name, status, master)
        committed = False
        if master and not c.read:
            done = self.autocommit and not status & IN_TRANS and not self.xa
            committed = done or c.trx == TrxKind.END
            self.learn_gtid(name, reply, committed)
        return committed

    def _learn_transaction(self, c: Classification, name: str, status: int, master: bool) -> None:
        if self.optimistic is not None:
            # Held on its replica whatever the status says (a read of no table opens nothing
            # there); only COMMIT or ROLLBACK ends it (the caller then calls moved()).
            if c.trx == TrxKind.END:
                self.optimistic_over(COMPLETED)
            return
        if c.trx == TrxKind.XA_BEGIN:
            self.xa = True
        if c.trx in (TrxKind.END, TrxKind.XA_END):
            self.pinned = None
            self.xa = False
        elif self.xa or status & IN_TRANS or (not status & AUTOCOMMIT and master):
            self.pinned = name
        elif self.pinned == name:
            self.pinned = None  # ended by the server: implicit commit (DDL), procedure

    def learn_gtid(self, name: str, reply: Reply | None, committed: bool) -> None:
        """A write on master *name* was answered (*reply*; None: a commit() call): read its
        GTID when tracked, and prepare the check that session reads will need."""
        gs = self.gtid
        if not self.track_gtids:
            # Unknown unless a mysqlnd_ms fetch_last_gtid statement tells it (gtid_written).
            gs.untracked_write = True
            return
        if reply is None:
            return
        if reply.has_next or (reply.message is None and reply.returned_rows):
            # Only the master surely has this write until a later write's GTID is known.
            gs.untracked()
            self.counts[Stat.GTID_UNTRACKED] += 1
        elif reply.status & SESSION_STATE_CHANGED and reply.message is not None:
            # (message None: rows came back, and the status is from an older OK packet.)
            gtid = gtid_from_session_state(reply.message)
            if gtid:
                self.gtid_written(gtid, name)

    def gtid_written(self, gtid: str, name: str) -> None:
        """Reads must now see *gtid*, written on master *name*."""
        gs = self.gtid
        gs.require(gtid, time.monotonic())
        gs.last_write = gtid
        gs.untracked_write = False
        # The check statement is built by the first read that needs one (prepare_check):
        # most reads after a write go to a replica known to have it, or to the master.
        self.counts[Stat.GTID_TRACKED] += 1

    def prepare_check(self, flavor: str) -> bool:
        """Build and validate the check statement for the current GTID on replicas of
        *flavor*, once per GTID; False if the GTID cannot be checked."""
        gs = self.gtid
        assert gs.gtid is not None
        try:
            injection = self.injection
            if self.cluster == "galera":  # the read waits on the node itself
                gs.check_sql, gs.check_is_wait = CAUSAL_READ, False
            elif injection is None:  # the native wait, not timed out: checked, not waited for
                gs.check_sql, gs.check_is_wait = wait_sql(flavor, gs.gtid, 0), True
            else:
                gs.check_sql, gs.check_is_wait = _injection_check(injection, gs.gtid, flavor)
        except ValueError:
            return False
        gs.check_key = (gs.gtid, flavor)
        return True

    def _state_after(
        self, tracker: Tracker, c: Classification, eff: Effects, name: str, reply: Reply
    ) -> None:
        tracker.record(eff, name, read=c.read, executed=reply.executed if eff.setting else "")
        if eff is not NOTHING:
            return  # the text explains what the server may report
        if reply.status & SESSION_STATE_CHANGED and reply.message:
            # Only an OK packet carries the state block (a result set leaves the flag set).
            self._server_reported(tracker, name, reply.message)
        if c.trx in (TrxKind.BEGIN, TrxKind.BEGIN_RO, TrxKind.XA_BEGIN):
            tracker.transaction_began(name)

    def _server_reported(self, tracker: Tracker, name: str, message: bytes) -> None:
        """The server changed session state that the statement's text does not explain
        (a procedure, a trigger): record what it said."""
        schema: str | None = None
        variables: dict[str, str] = {}
        changed = False
        for kind, data in session_state_items(message):
            if kind == TRACK_SCHEMA:
                schema = schema_name(data)
            elif kind == TRACK_SYSTEM_VARIABLES:
                var, value = system_variable(data)
                if var != "last_gtid":
                    variables[var] = value
            elif kind == TRACK_STATE_CHANGE:
                changed = True
        if schema is None and not variables and not changed:
            return
        self.counts[Stat.STATE_SERVER_CHANGES] += 1
        state_logger.info(
            "%s: the server reported session state changes no statement text explains%s",
            name,
            f" (database {schema})" if schema is not None else "",
        )
        tracker.server_reported(name, schema=schema, variables=variables)

    # ------------------------------------------------------------------ changes the API makes

    def ended(self) -> None:
        """commit(), rollback(), close() or autocommit(True) ended any open transaction."""
        self.xa = False
        if self.deferred is not None:  # a held-back BEGIN: nothing was sent, nothing is open
            self.deferred = None
            self.moved()
        if self.optimistic is not None:
            self.optimistic_over(COMPLETED)
            return
        if self.closed:
            self.pinned = None
            self.moved()
        elif self.pinned is not None:  # else nothing was open: the state is as it was
            table = self.memo.pins.get(None)
            if table is None or self._key is None:
                self._pin(None)
            else:  # _pin(None), inlined: every commit() gets here
                self.pinned, self._key, self.memo = None, table.key, table

    def set_autocommit(self, value: bool) -> None:
        self.autocommit = value
        self.sql_autocommit_off = False  # sent to every open session, the master's included
        self.counts["trx_autocommit_on" if value else "trx_autocommit_off"] += 1
        self.deferred = None  # a held-back BEGIN: the next statement decides either way
        if value:
            self.pinned = None  # switching autocommit on commits what was open
            self.xa = False
            if self.optimistic is not None:
                self.optimistic_over(COMPLETED)
        self.moved()

    def lost(self, name: str) -> None:
        """Backend *name*'s session is gone: what it held is gone too."""
        if self.tracker is not None:
            self.tracker.lost(name)
        if self.roles[name] == Role.MASTER:
            self.sql_autocommit_off = False
        self.moved()

    def set_roles(self, masters: tuple[str, ...], slaves: tuple[str, ...]) -> None:
        """The group's servers have these roles now (topology.discover): decide anew."""
        self.master_names, self.slave_names = masters, slaves
        # Every server keeps an entry: one in neither list (a conflict) is no master.
        self.roles = {n: Role.MASTER if n in masters else Role.SLAVE for n in self.roles}
        self.policy = self.policy._replace(has_slaves=bool(slaves))
        self.optimistic_on = self.group.trx_stickiness == "optimistic" and bool(slaves)
        self.forget_memos()

    def set_tracker(self, tracker: Tracker | None) -> None:
        self.tracker = tracker
        self.forget_memos()

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy
        self.forget_memos()

    def mark_failed(self, name: str) -> None:
        self.failed.add(name)
        self.moved()

    def unmark_failed(self, name: str) -> None:
        self.failed.discard(name)
        self.moved()

    def reopened(self) -> None:
        """connect() after close(): new sessions, nothing of the old ones is left."""
        self.closed = False
        self.optimistic = None
        self.deferred = None
        self.failed.clear()
        if self.tracker is not None:
            self.tracker = Tracker(self.tracker.mode, tuple(self.roles))
        self.moved()


def _injection_check(injection: GtidInjectionConfig, gtid: str, flavor: str) -> tuple[str, bool]:
    """The statement that tells whether a replica has *gtid* under mysqlnd_ms's
    global_transaction_id_injection, and whether it is a wait (0 = applied) rather than
    its check_for_gtid (a row = applied)."""
    if injection.check_for_gtid:
        if not (is_valid_gtid(gtid, "mariadb") or is_valid_gtid(gtid, "mysql")):
            raise ValueError(gtid)
        return injection.check_for_gtid.replace("#GTID", f"'{gtid}'"), False
    return wait_sql(flavor, gtid, injection.wait_for_gtid_timeout), True
