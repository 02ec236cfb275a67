"""A facade connection's optimistic transaction: the core's state and bookkeeping for it.

``ConnectionCore`` (msplugin.core) inherits this: the transaction open on a replica, the
texts remembered to start one, and the rule that the transaction after a conflict starts on
the master. Pure, as the core is: msplugin.optimistic holds the rules, msplugin.replay the
edge that runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from msplugin._types import Level, Stat
from msplugin.classify import CACHE_MAX_LEN
from msplugin.memo import NO_MEMO, Decided, MemoTable
from msplugin.optimistic import Caps, Transaction

if TYPE_CHECKING:
    from msplugin.memo import StateKey

__all__ = ["OptimisticState"]

_STARTS_MAX: Final = 1024  # remembered starts, cleared past this (texts with literals)


class OptimisticState:
    """The optimistic-transaction part of ConnectionCore's state (see the module)."""

    # ConnectionCore's state that these methods read and change.
    counts: dict[str, int]
    pinned: str | None
    last_used: str | None
    wrote: bool
    autocommit: bool
    sql_autocommit_off: bool
    memo: MemoTable
    _key: StateKey | None
    # Set by ConnectionCore.__init__.
    optimistic_on: bool
    caps: Caps
    optimistic: Transaction | None  # the transaction open on a replica
    after_conflict: bool  # see conflicted()
    starts: dict[str, Decided]  # texts that started one at level eventual (see start())

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

    def optimistic_began(self, name: str, sql: str, decided: Decided) -> None:
        """*sql*, the first read of an optimistic transaction, ran on replica *name*; it is
        remembered when nothing but its text decided that (see start())."""
        if (
            self._key is not None
            and decided.d.consistency == Level.EVENTUAL
            and len(sql) <= CACHE_MAX_LEN
        ):
            if len(self.starts) >= _STARTS_MAX:
                self.starts.clear()
            self.starts[sql] = decided
        self.optimistic = Transaction(name)
        self.pinned = name
        # moved(), inlined: with an optimistic transaction open nothing is remembered.
        self.memo = NO_MEMO
        self._key = None

    def start(self, sql: str) -> Decided | None:
        """How *sql* starts an optimistic transaction on a replica, if it is remembered and
        the state is one it was remembered in: autocommit off, nothing open, and nothing but
        the text deciding routes (no failed server, lag limit or pending session state)."""
        decided = self.starts.get(sql)
        if decided is None or self.pinned is not None or self._key is None or self.after_conflict:
            return None
        return decided if not self.autocommit or self.sql_autocommit_off else None

    def optimistic_over(self, stat: Stat | None) -> None:
        """The optimistic transaction left its replica (rolled back there); *stat* counts how
        it ended (None: it moves to the master, where nothing is open yet)."""
        self._optimistic_ended(stat)
        self.moved()

    def _optimistic_ended(self, stat: Stat | None) -> None:
        """The one place an optimistic transaction ends on its replica (committed, rolled
        back, in a conflict, or moved: *stat* None); the caller picks the new state's memo."""
        self.optimistic = None
        self.pinned = None
        if stat is Stat.OPTIMISTIC_CONFLICTS:
            self.conflicted()
        elif stat is not None:
            self.counts[stat] += 1
            self.after_conflict = False

    def conflicted(self) -> None:
        """An optimistic transaction ended in a conflict (over its cap on the replica, or a
        replayed read that differed on the master): its retry starts on the master, so a
        retry loop ends even while the replicas lag behind."""
        self.counts[Stat.OPTIMISTIC_CONFLICTS] += 1
        self.after_conflict = True

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
