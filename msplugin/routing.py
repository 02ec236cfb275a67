"""(classification, connection state, group policy) -> which role runs a statement, and why.

Pure: takes values, returns a Decision; the facade does the I/O. Because every input is a
small hashable value, decisions are cached, so the per-statement cost is one dict lookup.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from msplugin._types import Level, TrxKind
from msplugin.classify import Classification, Route

__all__ = ["Decision", "Explanation", "Policy", "Target", "decide", "split_replicating"]


class Target(enum.Enum):
    """Which backend a statement goes to."""

    MASTER = "master"
    SLAVE = "slave"
    LAST_USED = "last_used"
    TRANSACTION = "transaction"  # the backend that holds the open transaction


class Policy(NamedTuple):
    """The group settings routing depends on (from GroupConfig, plus run-time changes).

    A NamedTuple rather than a dataclass: it is hashed on every statement (decide's cache
    key), and a tuple's hash is computed in C.
    """

    trx_stickiness: str = "master"
    master_on_write: bool = False
    qos: str = "eventual"  # "strong" | "session" | "eventual"
    age: int | None = None  # with eventual: the replicas' maximum lag in seconds
    has_slaves: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a statement goes, why, which statistic counts it, and for a read on a slave the
    service level the slave must meet ("eventual" or "session")."""

    target: Target
    reason: str
    stat: str
    consistency: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer of ``Connection.explain()``: the decision plus the server it names."""

    route: Route
    role: str
    server: str | None
    reason: str

    def __str__(self) -> str:
        if self.role == "none":  # a held-back BEGIN (trx_stickiness optimistic)
            return f"nowhere: {self.reason}"
        where = self.server or f"a {self.role} (picked at execution)"
        return f"{where}: {self.reason}"


# The transaction context of a connection, as seen before a statement.
NO_TRANSACTION = ""
OPEN = "open"  # a transaction is open on one backend (pinned)
AUTOCOMMIT_OFF = "autocommit_off"  # no statement yet, but the next one starts a transaction


@lru_cache(maxsize=1024)
def decide(
    c: Classification, policy: Policy, trx: str, wrote: bool, has_last_used: bool
) -> Decision:
    """Decide the target for classification *c* under *policy* and the connection's state.

    Order: an open transaction pins to its backend (unless trx_stickiness is "disabled"), and
    a transaction that starts now goes to the master, or with trx_stickiness "on" or
    "optimistic" a read-only one to a slave (the core sends an optimistic one's first read
    to a replica); then SQL hints; then the service level (strong: the master); then the
    classifier, with master_on_write and "no slaves" sending reads to the master.
    """
    sticky = policy.trx_stickiness != "disabled"
    if sticky and trx == OPEN:
        ignored = f"; {c.reason} ignored" if c.hinted else ""
        return Decision(Target.TRANSACTION, f"transaction open{ignored}", "trx_master_forced")
    if (
        c.trx == TrxKind.BEGIN_RO
        and policy.trx_stickiness in ("on", "optimistic")
        and policy.has_slaves
    ):
        return Decision(
            Target.SLAVE,
            f"read-only transaction runs on one slave (trx_stickiness {policy.trx_stickiness})",
            "trx_read_only_slave",
            "eventual",
        )
    if sticky and trx == AUTOCOMMIT_OFF:
        return Decision(
            Target.MASTER, "autocommit off: the transaction runs on the master", "trx_master_forced"
        )
    if c.hinted:
        if c.route is Route.MASTER:
            return Decision(Target.MASTER, c.reason, "use_master_sql_hint")
        if c.route is Route.SLAVE:
            if not policy.has_slaves:
                return Decision(
                    Target.MASTER, f"{c.reason}, but no slaves configured", "use_master_no_slaves"
                )
            return Decision(Target.SLAVE, c.reason, "use_slave_sql_hint", c.qos or policy.qos)
        return Decision(Target.LAST_USED, c.reason, "use_last_used_sql_hint")
    qos = c.qos or policy.qos
    if c.route is Route.MASTER:
        return Decision(Target.MASTER, c.reason, "use_master_guess")
    if c.route is Route.LAST_USED:
        if has_last_used:
            return Decision(Target.LAST_USED, c.reason, "use_last_used_guess")
        return Decision(Target.MASTER, f"{c.reason}; nothing ran yet", "use_master_guess")
    if qos == Level.STRONG:
        how = "hint ms=strong" if c.qos else "strong consistency"
        return Decision(
            Target.MASTER, f"{c.reason}; {how}: reads on the master", "use_master_qos_strong"
        )
    if policy.master_on_write and wrote:
        return Decision(
            Target.MASTER, f"{c.reason}; master_on_write after a write", "use_master_on_write"
        )
    if not policy.has_slaves:
        return Decision(Target.MASTER, f"{c.reason}; no slaves configured", "use_master_no_slaves")
    return Decision(Target.SLAVE, c.reason, "use_slave_guess", qos)


def split_replicating(
    candidates: tuple[str, ...],
    stopped_since: dict[str, float],
    now: float,
    limit: float | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(replicas that may serve reads, replicas left out because their replication threads
    have not both run for longer than *limit* seconds).

    *stopped_since* maps a candidate to when it was first seen not replicating; *limit* None
    leaves no replica out for that. The left-out ones still serve a read when nothing else
    can (MaxScale's "stale slave"): the caller decides that.
    """
    if limit is None or not stopped_since:
        return candidates, ()
    stale = tuple(n for n in candidates if now - stopped_since.get(n, now) > limit)
    if not stale:
        return candidates, ()
    return tuple(n for n in candidates if n not in stale), stale
