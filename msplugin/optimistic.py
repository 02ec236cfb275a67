"""Optimistic transactions: the pure rules (trx_stickiness "optimistic", not yet configurable).

A transaction whose first statement is a plain read starts on a replica as a read-only
transaction. Its statements are kept, each with a digest of its result. At the first statement
that is not a plain read, the replica transaction is rolled back, the transaction starts on the
master, the kept statements run again there, and their digests must be equal one by one: then
the transaction goes on on the master and the application sees nothing; else it ends with a
conflict that the application retries like a deadlock.

This module decides; it sends nothing. The edge runs the statements, digests each reply with
``digest()`` or ``error_digest()``, asks ``admit()`` before each statement and ``first_difference()``
after a replay.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from msplugin._types import TrxKind
from msplugin.classify import CACHE_MAX_LEN, Route, blank, classify

__all__ = [
    "Caps",
    "Kept",
    "Transaction",
    "Verdict",
    "admit",
    "differs_by_server",
    "digest",
    "error_digest",
    "first_difference",
    "keep",
]


class Verdict(enum.Enum):
    """What the edge does with the next statement of an optimistic transaction."""

    STAY = "stay"  # run it on the replica and keep it
    MOVE = "move"  # roll back on the replica, replay the kept statements on the master, run it
    END = "end"  # it ends the transaction on the replica (COMMIT, ROLLBACK): nothing to replay
    CONFLICT = "conflict"  # the kept prefix is over its cap after reads: the transaction ends


@dataclass(frozen=True, slots=True)
class Caps:
    """Bounds on what an optimistic transaction keeps (statements, and result bytes digested)."""

    statements: int = 100
    bytes: int = 1 << 20


@dataclass(frozen=True, slots=True)
class Kept:
    """A statement that ran on the replica: its text, its arguments, its result's digest."""

    query: str
    args: Any
    digest: bytes


@dataclass(slots=True)
class Transaction:
    """An optimistic transaction running on *replica* (a backend name)."""

    replica: str
    kept: list[Kept] = field(default_factory=list)
    size: int = 0  # bytes of the digested results so far

    def reason(self, verdict: Verdict, why: str) -> str:
        """The routing log's and explain()'s words for *verdict*."""
        if verdict is Verdict.MOVE:
            return f"optimistic transaction moves from {self.replica} to the master: {why}"
        if verdict is Verdict.CONFLICT:
            return f"optimistic transaction on {self.replica} ends in a conflict: {why}"
        return f"optimistic transaction on {self.replica}: {why}"


# Functions and names whose value depends on the server (or on the moment) by design: on the
# master they would return something else, so keeping them guarantees a conflict. Searched in
# the upper-cased text with literals and comments blanked.
_DIFFERS: Final = re.compile(
    r"""
      (?<![\w$.])(?P<func>NOW|SYSDATE|CURDATE|CURTIME|UNIX_TIMESTAMP|UTC_DATE|UTC_TIME
        |UTC_TIMESTAMP|RAND|UUID|UUID_SHORT|SYS_GUID|CONNECTION_ID|VERSION|USER|SESSION_USER
        |SYSTEM_USER|MASTER_POS_WAIT|MASTER_GTID_WAIT|SOURCE_POS_WAIT|BINLOG_GTID_POS)\s*+\(
    | (?<![\w$.])(?P<word>CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME|CURRENT_USER
        |LOCALTIMESTAMP|LOCALTIME)(?![\w$])
    | (?P<sysvar>@@[\w$.]*+)
    | (?<![\w$])(?P<schema>INFORMATION_SCHEMA|PERFORMANCE_SCHEMA)(?![\w$])
    """,
    re.VERBOSE,
)


def differs_by_server(sql: str) -> str | None:
    """Why *sql*'s result would differ between a replica and the master by design (a clock,
    a random value, the connection, a system variable, server metadata), or None."""
    if len(sql) <= CACHE_MAX_LEN:
        return _differs_cached(sql)
    return _differs(sql)


@lru_cache(maxsize=1024)
def _differs_cached(sql: str) -> str | None:
    return _differs(sql)


def _differs(sql: str) -> str | None:
    m = _DIFFERS.search(blank(sql).upper())
    if m is None:
        return None
    if m.group("func") is not None:
        return f"{m.group('func')}() differs by server"
    if m.group("word") is not None:
        return f"{m.group('word')} differs by server"
    if m.group("sysvar") is not None:
        return f"{m.group('sysvar')} differs by server"
    return f"{m.group('schema')} differs by server"


def admit(trx: Transaction, sql: str, caps: Caps) -> tuple[Verdict, str]:
    """Where *sql*, the next statement of *trx*, runs, and why.

    Classified by msplugin's own rules whatever the group's classifier: mysqlnd_ms's rule
    takes ``SELECT ... FOR UPDATE`` for a read, and a locking read must run on the master."""
    c = classify(sql)
    if c.trx == TrxKind.END:
        return Verdict.END, "it ends on the replica"
    if c.trx != TrxKind.NONE:
        return Verdict.MOVE, "a transaction statement"
    if not c.read or c.route is Route.MASTER:
        return Verdict.MOVE, c.reason if not c.hinted else f"{c.reason}: not a plain read"
    if c.statements > 1:
        # Only the first result would be digested: the others could differ unseen.
        return Verdict.MOVE, "a multi-statement text"
    why = differs_by_server(sql)
    if why is not None:
        return Verdict.MOVE, why
    if len(trx.kept) >= caps.statements or trx.size >= caps.bytes:
        return _over_cap(trx, caps)
    return Verdict.STAY, c.reason


def _over_cap(trx: Transaction, caps: Caps) -> tuple[Verdict, str]:
    what = (
        f"{len(trx.kept)} statements kept (cap {caps.statements})"
        if len(trx.kept) >= caps.statements
        else f"{trx.size} result bytes kept (cap {caps.bytes})"
    )
    # Nothing kept yet: nothing was read, so moving costs no replay and risks no conflict.
    return (Verdict.MOVE if not trx.kept else Verdict.CONFLICT), what


def keep(trx: Transaction, query: str, args: Any, result: tuple[bytes, int]) -> None:
    """*query* ran on the replica and *result* is ``digest()``'s answer: keep it."""
    trx.kept.append(Kept(query, args, result[0]))
    trx.size += result[1]


def digest(
    description: Any, rows: Any, affected: int, insert_id: int | None, warnings: int
) -> tuple[bytes, int]:
    """A result's digest and its size in bytes: the columns' names and types in order, the
    rows in order, affected rows, insert id and warnings (status flags excluded: they differ
    by server, a read-only transaction on one and a read-write one on the other).

    ``repr()`` of the values PyMySQL returns (int, float, str, bytes, Decimal, dates, None)
    is exact (floats round-trip) and unambiguous (strings are quoted and escaped), so equal
    digests mean equal results up to BLAKE2b collisions; ``hash()`` would not do (hash(-1)
    equals hash(-2))."""
    columns = None if description is None else tuple((d[0], d[1]) for d in description)
    text = repr((columns, rows, affected, insert_id, warnings)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=16).digest(), len(text)


def error_digest(errno: int, message: str) -> tuple[bytes, int]:
    """The digest of an error reply: its code and message."""
    text = repr(("error", errno, message)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=16).digest(), len(text)


def first_difference(kept: list[Kept], replayed: list[bytes]) -> int | None:
    """The index of the first kept statement whose replayed digest differs, or None when the
    master answered every kept statement as the replica did. A replay cut short (fewer
    digests) differs at its end."""
    for i, k in enumerate(kept):
        if i >= len(replayed) or replayed[i] != k.digest:
            return i
    return None
