"""Optimistic transactions: the pure rules (trx_stickiness "optimistic", not yet configurable).

A transaction whose first statement is a plain read starts on a replica as a read-only
transaction. Its statements are kept, each with its result. At the first statement that is not
a plain read, the replica transaction is rolled back, the transaction starts on the master, the
kept statements run again there, and their results must be equal one by one: then
the transaction goes on on the master and the application sees nothing; else it ends with a
conflict that the application retries like a deadlock.

This module decides; it sends nothing. The edge runs the statements, takes each reply's
``outcome()`` or ``error_outcome()``, asks ``admit()`` before each statement, and compares the
outcomes of a replay with the kept ones.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from msplugin._types import Level, Stat, TrxKind
from msplugin.classify import CACHE_MAX_LEN, Classification, Route, blank, classify
from msplugin.routing import Decision, Target

__all__ = [
    "Caps",
    "Kept",
    "Transaction",
    "Verdict",
    "admit",
    "differs_by_server",
    "error_outcome",
    "keep",
    "outcome",
    "start_decision",
]


class Verdict(enum.Enum):
    """What the edge does with the next statement of an optimistic transaction."""

    STAY = "stay"  # run it on the replica and keep it
    MOVE = "move"  # roll back on the replica, replay the kept statements on the master, run it
    END = "end"  # it ends the transaction on the replica (COMMIT, ROLLBACK): nothing to replay
    CONFLICT = "conflict"  # the kept prefix is over its cap after reads: the transaction ends


@dataclass(frozen=True, slots=True)
class Caps:
    """Bounds on what an optimistic transaction keeps: statements, and the rows of their results."""

    statements: int = 100
    rows: int = 10_000


# (description, rows, affected rows, insert id, warnings): see outcome().
Outcome = tuple[Any, Any, Any, Any, int]


# A statement that ran on the replica: (its text, its arguments, its outcome()). A plain
# tuple: one is made for every read of an optimistic transaction.
Kept = tuple[str, Any, Outcome]


@dataclass(slots=True)
class Transaction:
    """An optimistic transaction running on *replica* (a backend name)."""

    replica: str
    # The application's BEGIN or START TRANSACTION, held back (see defers()): the master's
    # session runs with autocommit on, so the transaction starts there with it if it moves.
    begin: str | None = None
    kept: list[Kept] = field(default_factory=list)
    rows: int = 0  # rows of the kept results so far

    def reason(self, verdict: Verdict, why: str) -> str:
        """The routing log's and explain()'s words for *verdict*."""
        if verdict is Verdict.MOVE:
            return f"optimistic transaction moves from {self.replica} to the master: {why}"
        if verdict is Verdict.CONFLICT:
            return f"optimistic transaction on {self.replica} ends in a conflict: {why}"
        return f"optimistic transaction on {self.replica}: {why}"


_NOTHING_KEPT: Final = Transaction("")  # admit()'s view of a transaction not yet started


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
        # Only the first result would be kept: the others could differ unseen.
        return Verdict.MOVE, "a multi-statement text"
    why = differs_by_server(sql)
    if why is not None:
        return Verdict.MOVE, why
    if len(trx.kept) >= caps.statements or trx.rows >= caps.rows:
        return _over_cap(trx, caps)
    return Verdict.STAY, c.reason


def start_decision(c: Classification, d: Decision, sql: str, qos: str, caps: Caps) -> Decision:
    """With autocommit off and no transaction open, where *sql* (classified *c*, decided *d*:
    the master) opens one under trx_stickiness optimistic: on a replica if it is a plain read
    that may run there (*qos*: the connection's service level)."""
    level = c.qos or qos
    if level == Level.STRONG or d.stat != Stat.TRX_MASTER_FORCED:
        return d
    if admit(_NOTHING_KEPT, sql, caps)[0] is not Verdict.STAY:
        return d
    return Decision(
        Target.SLAVE,
        "autocommit off: the transaction starts on a replica (trx_stickiness optimistic)",
        Stat.OPTIMISTIC_STARTED,
        level,
    )


_SNAPSHOT: Final = re.compile(r"\bCONSISTENT\s++SNAPSHOT\b", re.IGNORECASE)


def defers(c: Classification, sql: str) -> bool:
    """Whether *sql*, classified *c*, is a BEGIN or START TRANSACTION that an optimistic
    connection holds back with nothing open: the transaction opens at its first statement,
    on a replica if that is a plain read, else with this text on the master. Not a hinted
    one (the hint says where it goes), nor one WITH CONSISTENT SNAPSHOT (its snapshot is
    taken at once), nor READ ONLY (it runs on one slave as under trx_stickiness "on")."""
    return (
        c.trx == TrxKind.BEGIN
        and c.statements == 1
        and not c.hinted
        and _SNAPSHOT.search(sql) is None
    )


def _over_cap(trx: Transaction, caps: Caps) -> tuple[Verdict, str]:
    what = (
        f"{len(trx.kept)} statements kept (cap {caps.statements})"
        if len(trx.kept) >= caps.statements
        else f"{trx.rows} result rows kept (cap {caps.rows})"
    )
    # Nothing kept yet: nothing was read, so moving costs no replay and risks no conflict.
    return (Verdict.MOVE if not trx.kept else Verdict.CONFLICT), what


def keep(trx: Transaction, query: str, args: Any, result: Outcome) -> None:
    """*query* ran on the replica and answered *result* (``outcome()``): keep it."""
    trx.kept.append((query, args, result))
    rows = result[1]
    if rows:
        trx.rows += len(rows)


def outcome(
    description: Any, rows: Any, affected: int, insert_id: int | None, warnings: int
) -> Outcome:
    """What a replay must find equal: the columns (names, types, sizes) in order, the rows in
    order, affected rows, insert id and warnings; not the status flags, which differ by
    server (a transaction read-only on one, read-write on the other).

    Kept as values, not hashed, and compared with ``==``: the same column type gives the
    same Python type on both servers, so equal values are equal results, exactly (a digest
    would cost more than the comparison: ``repr()`` alone about 18k instructions a row).
    *rows* is a tuple of tuples (msplugin.driver.result_facts)."""
    return (description, rows, affected, insert_id, warnings)


def error_outcome(errno: int, message: str) -> Outcome:
    """The outcome of an error reply: its code and message."""
    return ("error", None, errno, message, 0)
