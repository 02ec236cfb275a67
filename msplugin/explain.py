"""``Connection.explain()``: the route a statement would take, decided as when it runs, without
connecting, sending, counting or warning anything."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from msplugin import health
from msplugin._types import Level, Role, TrxKind
from msplugin.classify import Classification, classify
from msplugin.follow import follow
from msplugin.memo import Decided
from msplugin.optimistic import Transaction, Verdict, admit
from msplugin.router import fixed_by
from msplugin.routing import Decision, Explanation, Target

if TYPE_CHECKING:
    from msplugin.router import Router

__all__ = ["explain"]


def explain(router: Router, sql: str) -> Explanation:
    """Where *sql* would run on *router*'s connection now, and why."""
    if router.topology is not None:
        follow(router)  # the roles a statement would be routed by now
    if router.core.optimistic is not None:
        return _optimistic(router, sql, router.core.optimistic)
    decided = router.core.decided(sql, router.classifier)
    if router.core.optimistic_on and router.core.holds(sql, decided.c):
        what = "nothing is open" if decided.c.trx == TrxKind.END else "held back"
        return Explanation(
            decided.c.route,
            "none",
            None,
            f"{what}, not sent: the transaction opens at its first statement, on a replica if "
            "that is a plain read (trx_stickiness optimistic)",
        )
    if router.custom:
        router.filter_context(sql, decided.d.target)  # what the filters leave, as at run time
    return _with_state(router, sql, decided, _target(router, decided.c, decided.d))


def _optimistic(router: Router, sql: str, trx: Transaction) -> Explanation:
    """*sql* in the optimistic transaction open on a replica (msplugin.optimistic)."""
    c = classify(sql, router.classifier)
    verdict, why = admit(trx, sql, router.core.caps)
    reason = trx.reason(verdict, why)
    if verdict is Verdict.MOVE:
        if trx.kept:
            reason += f"; its {len(trx.kept)} kept read(s) run again there first"
        return _master(router, c, reason)
    if verdict is Verdict.CONFLICT:
        reason += ": it would raise OptimisticConflict"
    return Explanation(c.route, "slave", trx.replica, reason)


def _target(router: Router, c: Classification, d: Decision) -> Explanation:
    if d.target is Target.MASTER:
        return _master(router, c, d.reason)
    if d.target is Target.TRANSACTION:
        pinned = router.pinned
        assert pinned is not None
        return Explanation(c.route, pinned.role, pinned.name, d.reason)
    if d.target is Target.LAST_USED:
        last = router.last_used
        if last is None:
            return Explanation(
                c.route, "last_used", None, f"{d.reason}; would fail: nothing ran yet"
            )
        return Explanation(c.route, last.role, last.name, d.reason)
    backends = router.backends
    candidates, stale = backends.eligible(d, router.allowed_slaves())
    if candidates:
        reason = d.reason
        age = router.core.policy.age
        if d.consistency == Level.SESSION and c.read:
            reason += "; service level session: a replica that has this connection's writes, else the master"
        elif d.consistency == Level.EVENTUAL and age is not None:
            reason += f"; service level eventual: a replica at most {age} s behind"
        return Explanation(c.route, "slave", backends.picker.peek(candidates), reason)
    reason = router.no_replica(d)
    if router.group.failover.strategy == "disabled":
        if stale:
            return _stale(c, stale, reason, "failover is disabled")
        return Explanation(c.route, "slave", None, f"{reason}; would fail: failover is disabled")
    e = _master(router, c, reason)
    if e.server is None and stale:
        return _stale(c, stale, reason, "no master can be connected")
    return dataclasses.replace(e, reason=e.reason + ": the master serves it") if e.server else e


def _stale(c: Classification, stale: tuple[str, ...], reason: str, why: str) -> Explanation:
    return Explanation(
        c.route,
        "slave",
        stale[0] if len(stale) == 1 else None,
        f"{reason}; the master cannot serve it ({why}): a replica that is not replicating does",
    )


def _master(router: Router, c: Classification, reason: str) -> Explanation:
    """The master a statement would use: the connected one, else the first the filters
    allow that is not quarantined."""
    backends = router.backends
    allowed = router.allowed_masters()
    names = allowed if allowed is not None else tuple(b.name for b in backends.masters)
    current = backends.master_backend
    if current is not None and current.conn is not None and current.name in names:
        return Explanation(c.route, "master", current.name, reason)
    for name in names:
        if backends.by_name[name].address not in health.down:
            return Explanation(c.route, "master", name, reason)
    why = "the filters left no master" if not names else "every master is quarantined"
    if not backends.masters:
        why = f"no server takes writes now ({backends.no_master})"
    return Explanation(c.route, "master", None, f"{reason}; would fail: {why}")


def _with_state(router: Router, sql: str, decided: Decided, e: Explanation) -> Explanation:
    """*e*, with what session state says of the statement on the chosen backend."""
    tracker = router.core.tracker
    backends = router.backends
    # No replica picked yet (random): judge state on the first, as a stand-in.
    chosen = e.server or (backends.slave_names[0] if e.role == Role.SLAVE else None)
    if tracker is None or chosen is None:
        return e
    c, d = decided.c, decided.d
    plan = tracker.plan(
        sql,
        decided.eff,
        chosen,
        read=c.read,
        fixed=fixed_by(c, d.target),
        master=backends.master_name(),
    )
    reason = e.reason
    if plan.error:
        return dataclasses.replace(e, reason=f"{reason}; would fail: {plan.error}")
    if plan.move_to:
        e = dataclasses.replace(e, role=backends.by_name[plan.move_to].role, server=plan.move_to)
        reason += f"; {plan.reason}"
    for w in plan.warnings:
        if not e.server:
            w = w.replace(f"runs on {chosen}", "runs on a slave")
        reason += f"; warning: {w}"
    if plan.replay:
        reason += f"; {len(plan.replay)} session setting(s) replayed there first"
    return dataclasses.replace(e, reason=reason)
