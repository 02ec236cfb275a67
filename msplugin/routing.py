"""(classification, connection state, group policy) -> which role runs a statement, and why.

Pure: takes values, returns a Decision; the facade does the I/O. Because every input is a
small hashable value, decisions are cached, so the per-statement cost is one dict lookup.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

from msplugin.classify import Classification, Route

__all__ = ["Decision", "Explanation", "Policy", "Target", "decide"]


class Target(enum.Enum):
    """Which backend a statement goes to."""

    MASTER = "master"
    SLAVE = "slave"
    LAST_USED = "last_used"


@dataclass(frozen=True, slots=True)
class Policy:
    """The group settings routing depends on (from GroupConfig, plus run-time changes)."""

    trx_stickiness: str = "master"
    master_on_write: bool = False
    strong_consistency: bool = False
    has_slaves: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a statement goes, why, and which statistic counts it."""

    target: Target
    reason: str
    stat: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer of ``Connection.explain()``: the decision plus the server it names."""

    route: Route
    role: str
    server: str | None
    reason: str

    def __str__(self) -> str:
        where = self.server or f"a {self.role} (picked at execution)"
        return f"{where}: {self.reason}"


@lru_cache(maxsize=1024)
def decide(
    c: Classification, policy: Policy, *, in_transaction: bool, wrote: bool, has_last_used: bool
) -> Decision:
    """Decide the target for classification *c* under *policy* and the connection's state.

    Order: an open transaction pins to the master (unless trx_stickiness is "disabled"); then SQL
    hints; then strong consistency; then the classifier, with master_on_write and "no slaves"
    sending reads to the master.
    """
    if in_transaction and policy.trx_stickiness != "disabled":
        ignored = f"; {c.reason} ignored" if c.hinted else ""
        return Decision(
            Target.MASTER, f"transaction open on the master{ignored}", "trx_master_forced"
        )
    if c.hinted:
        if c.route is Route.MASTER:
            return Decision(Target.MASTER, c.reason, "use_master_sql_hint")
        if c.route is Route.SLAVE:
            if not policy.has_slaves:
                return Decision(
                    Target.MASTER, f"{c.reason}, but no slaves configured", "use_master_no_slaves"
                )
            return Decision(Target.SLAVE, c.reason, "use_slave_sql_hint")
        return Decision(Target.LAST_USED, c.reason, "use_last_used_sql_hint")
    if policy.strong_consistency:
        return Decision(
            Target.MASTER, "strong consistency: everything on the master", "use_master_qos_strong"
        )
    if c.route is Route.MASTER:
        return Decision(Target.MASTER, c.reason, "use_master_guess")
    if c.route is Route.LAST_USED:
        if has_last_used:
            return Decision(Target.LAST_USED, c.reason, "use_last_used_guess")
        return Decision(Target.MASTER, f"{c.reason}; nothing ran yet", "use_master_guess")
    if policy.master_on_write and wrote:
        return Decision(
            Target.MASTER, f"{c.reason}; master_on_write after a write", "use_master_on_write"
        )
    if not policy.has_slaves:
        return Decision(Target.MASTER, f"{c.reason}; no slaves configured", "use_master_no_slaves")
    return Decision(Target.SLAVE, c.reason, "use_slave_guess")
