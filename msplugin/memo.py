"""Remembered routes: per state of a facade connection, the statements already decided in it.

Values only: the core (msplugin.core) fills and reads them; the cursor looks a statement up.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from msplugin._types import Level, Stat
from msplugin.classify import Classification
from msplugin.routing import Decision, Target
from msplugin.state import Effects

__all__ = ["NO_MEMO", "Decided", "Memo", "MemoTable", "StateKey"]


class MemoTable(dict[str, "Memo"]):
    """The statements remembered in one state, by text; *key* names the state."""

    __slots__ = ("key", "pins")

    def __init__(self, key: StateKey | None) -> None:
        super().__init__()
        self.key = key
        # The tables of the states that differ from this one in the pinned backend alone,
        # by backend (None: unpinned): a transaction opening or ending finds its table by
        # one lookup of a name (see ConnectionCore._pin).
        self.pins: dict[str | None, MemoTable] = {}


# (pinned backend, autocommit, SET autocommit=0 seen, wrote (with master_on_write), a
# statement ran): what trx_context() and decide() read of the state.
StateKey = tuple[str | None, bool, bool, bool, bool]
NO_MEMO: Final = MemoTable(None)  # never written: every lookup misses


class Decided(NamedTuple):
    """What the text and the connection's state say of a statement (cached per both)."""

    c: Classification
    d: Decision
    eff: Effects
    memo_ok: bool  # may be remembered once it ran: it touches no state and needs no check


class Memo:
    """A statement decided in one state, and what it does to that state: routed again by
    one lookup, learned from by one comparison of the reply's status with *expect*."""

    __slots__ = (
        "candidates",
        "decided",
        "dirty",
        "expect",
        "hits",
        "master",
        "pin",
        "read",
        "reason",
        "role_stat",
        "server",
        "session",
        "start",
        "stat",
    )

    def __init__(
        self,
        decided: Decided,
        stat: str,
        reason: str,
        server: str | None,
        candidates: tuple[str, ...],
        expect: int,
        *,
        pin: bool,
        dirty: bool,
        master: bool,
    ) -> None:
        self.decided = decided
        self.hits = 0  # runs not yet in the statistics (msplugin.stats adds them up)
        self.stat = stat
        self.reason = reason
        self.server = server  # None: picked among *candidates* for each statement
        self.candidates = candidates
        self.expect = expect
        self.pin = pin  # the reply opened a transaction here: it pins the connection
        self.read = decided.c.read
        self.dirty = dirty
        self.master = master
        self.role_stat = "use_master" if master else "use_slave"
        # A session read: the edge asks session_backend() for its server at each run and
        # counts it as the full path does (hits stay 0).
        self.session = decided.d.target is Target.SLAVE and decided.d.consistency == Level.SESSION
        # A read that opens an optimistic transaction on a replica: msplugin.replay runs it
        # (the replica keeps what it answers) and the core holds the transaction.
        self.start = decided.d.stat is Stat.OPTIMISTIC_STARTED
