"""A facade connection's optimistic transaction: the core's state and bookkeeping for it.

``ConnectionCore`` (msplugin.core) inherits this: the transaction open on a replica and the
rule that the transaction after a conflict starts on the master (a text that started one is
remembered like any statement: msplugin.memo, its ``start`` flag). Pure, as the core is:
msplugin.optimistic holds the rules, msplugin.replay the edge that runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from msplugin._types import Stat, TrxKind
from msplugin.memo import NO_MEMO, MemoTable
from msplugin.optimistic import Caps, Transaction, defers

if TYPE_CHECKING:
    from msplugin.classify import Classification
    from msplugin.memo import StateKey
    from msplugin.state import Tracker

__all__ = ["COMPLETED", "OptimisticState"]

# Plain strings, for what runs once per transaction: a Stat member costs a lookup through its
# enum class, and as a key of the counts (plain strings) a comparison by value.
COMPLETED: Final = Stat.OPTIMISTIC_COMPLETED_ON_REPLICA.value
_CONFLICTS: Final = Stat.OPTIMISTIC_CONFLICTS.value


class OptimisticState:
    """The optimistic-transaction part of ConnectionCore's state (see the module)."""

    # ConnectionCore's state that these methods read and change.
    counts: dict[str, int]
    pinned: str | None
    last_used: str | None
    wrote: bool
    autocommit: bool
    sql_autocommit_off: bool
    closed: bool
    xa: bool
    tracker: Tracker | None
    memo: MemoTable
    _key: StateKey | None
    # Set by ConnectionCore.__init__.
    optimistic_on: bool
    caps: Caps
    optimistic: Transaction | None  # the transaction open on a replica
    after_conflict: bool  # see conflicted()
    deferred: str | None  # see defer()
    _resume: MemoTable | None  # see optimistic_began()

    def moved(self) -> None:
        raise NotImplementedError  # ConnectionCore's

    def started_on_master(self, master: str) -> None:
        """A read routed to start an optimistic transaction (and counted so) runs on
        *master* instead: it is counted as the master's."""
        counts = self.counts
        counts[Stat.OPTIMISTIC_STARTED] -= 1
        counts[Stat.USE_SLAVE] -= 1
        counts[Stat.TRX_MASTER_FORCED] += 1
        counts[Stat.USE_MASTER] += 1
        self.wrote = True  # as routed() has it for any statement on the master
        self.last_used = master

    def optimistic_began(self, name: str, plain: bool) -> Transaction:
        """The first read of an optimistic transaction ran on replica *name*: the
        transaction. *plain*: the read's reply carries no session state and the read changes
        none, so all there is to learn from it is where FOUND_ROWS() lives (else the edge
        learns from it the full way, and moved() decides the state anew)."""
        if plain and self.tracker is not None:  # optimistic_read(), inlined: once per unit
            self.tracker.found_rows_home = name
        trx = self.optimistic = Transaction(name, self.deferred)
        self.deferred = None
        self.pinned = name
        # The state it ends in is the one it started from, but for last_used: its table of
        # remembered routes, unless moved() runs before it ends (see optimistic_over).
        key = self._key
        self._resume = self.memo if key is not None and key[4] else None
        # moved(), inlined: with an optimistic transaction open nothing is remembered.
        self.memo = NO_MEMO
        self._key = None
        return trx

    def holds(self, sql: str, c: Classification) -> bool:
        """Whether *sql* (classified *c*) would not be sent: a BEGIN or START TRANSACTION
        with nothing open (msplugin.optimistic.defers()) is held back, and a COMMIT or
        ROLLBACK right after it ends nothing."""
        if self.deferred is not None and c.trx == TrxKind.END and c.statements == 1:
            return True
        return self.optimistic_on and self.pinned is None and not self.xa and defers(c, sql)

    def defer(self, sql: str, c: Classification) -> bool:
        """True if *sql* is not sent (holds()). The statement after a held-back BEGIN
        decides in the state of autocommit off (trx_context()): a plain read starts an
        optimistic transaction on a replica; anything else runs on the master after the
        BEGIN (the edge sends it: deferred_sent())."""
        if not self.holds(sql, c):
            return False
        self.deferred = None if c.trx == TrxKind.END else sql
        self.moved()  # nothing is remembered while a BEGIN is held back
        return True

    def deferred_sent(self) -> str:
        """The held-back BEGIN, which the edge sends now (before a statement on the master);
        put it back with defer_again() if it failed to reach the server."""
        sql = self.deferred
        assert sql is not None
        self.deferred = None
        return sql

    def defer_again(self, sql: str) -> None:
        self.deferred = sql
        self.moved()

    def optimistic_read(self, name: str) -> None:
        """A plain read of the open optimistic transaction ran on its replica *name* and its
        reply carries no session state: all there is to learn is where FOUND_ROWS() lives
        (else the edge learns from the reply the full way)."""
        if self.tracker is not None:
            self.tracker.found_rows_home = name

    def optimistic_over(self, stat: str | None) -> None:
        """The one place an optimistic transaction ends on its replica (rolled back there,
        or committed): *stat* counts how (None: it moves to the master, where nothing is open
        yet). The state is then the one the transaction started from, whose remembered
        routes apply again, unless it changed on the way: every change goes through
        moved(), which forgets ``_resume``."""
        resume = self._resume
        self.optimistic = None
        self.pinned = None
        if stat == _CONFLICTS:
            self.conflicted()
        elif stat is not None:
            self.counts[stat] += 1
            self.after_conflict = False
        if resume is not None and not self.after_conflict and not self.closed:
            self._resume = None
            self.memo, self._key = resume, resume.key
        else:
            self.moved()

    def conflicted(self) -> None:
        """An optimistic transaction ended in a conflict (over its cap on the replica, or a
        replayed read that differed on the master): its retry starts on the master, so a
        retry loop ends even while the replicas lag behind."""
        self.counts[Stat.OPTIMISTIC_CONFLICTS] += 1
        self.after_conflict = True
        # A remembered start would put the retry on a replica: moved() remembers nothing
        # until retry_on_master() ran.
        self.memo = NO_MEMO
        self._key = None

    def retry_on_master(self) -> bool:
        """True once after a conflict: the transaction starting now (its retry, most likely)
        starts on the master."""
        if not self.after_conflict:
            return False
        self.after_conflict = False
        return True

    def optimistic_moved(self, master: str) -> None:
        """The optimistic transaction's reads ran again on *master*, which now holds it."""
        self.pinned = master
        self.last_used = master
        self.moved()
