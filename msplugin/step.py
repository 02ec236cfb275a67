"""A statement's route, handed from the router to the cursor and back: a value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from msplugin._types import Role, Stat

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.memo import Decided, MemoTable

__all__ = ["Step"]


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
        memo: MemoTable | None = None,
    ) -> None:
        self.sql = sql
        self.backend = backend
        self.decided = decided
        self.reason = reason
        self.check = check
        self.memo = memo

    def opens_on_replica(self) -> bool:
        """Whether this read opens an optimistic transaction on a replica (msplugin.replay
        runs it: the replica keeps what it answers)."""
        return self.decided.d.stat is Stat.OPTIMISTIC_STARTED and self.backend.role == Role.SLAVE
