"""The edge of read-your-writes: where a session read goes, and its GTID check.

The GTID state and its rules are msplugin.consistency's and the core's; these functions do
what needs a connection: pick and connect the server a session read goes to, send the check
(in the read's packet where multi-statements are on) and read its answer. They take the
connection's router, as msplugin.recovery does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pymysql import err

from msplugin import health
from msplugin._types import Role, Stat
from msplugin.classify import cut_sql
from msplugin.health import down as _down
from msplugin.monitor import not_replicating as _not_replicating
from msplugin.step import Step

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.consistency import GtidState
    from msplugin.memo import Memo
    from msplugin.router import Router
    from msplugin.routing import Decision

__all__ = ["check_result", "run_check", "session_backend", "session_fallback", "session_step"]

route_logger = logging.getLogger("msplugin.routing")


async def session_backend(
    router: Router, d: Decision, candidates: tuple[str, ...]
) -> tuple[Backend, str, str | None]:
    """A session-consistent read: a replica known to have this connection's writes, one
    to check (the check statement is returned), or the master."""
    core = router.core
    gs = core.gtid
    counts = router.stats.counts
    if gs.gtid is None:
        if gs.untracked_write:
            counts[Stat.USE_MASTER_SESSION] += 1
            why = "session: this connection wrote and its GTID is unknown"
            return await router.backends.master(), f"{d.reason}; {why}", None
        return (
            await router.backends.slave(candidates),
            f"{d.reason}; session: nothing written yet",
            None,
        )
    gtid = gs.gtid
    known = gs.known
    if not known and _likely_behind(gs):
        return await _session_master(router, d, gtid)  # no replica picked: none would take it
    backend = await router.backends.slave(
        candidates
    )  # the load balancer picks first, as for any read
    if backend.role == Role.MASTER:
        return backend, d.reason, None
    if known:
        if backend.name not in known:
            # A replica known to have the GTID beats the balancer's pick until the next
            # write: a check costs a second result set on every read.
            name = next((n for n in candidates if n in known), None)
            if name is not None:
                backend = await router.backends.slave((name,))
        if backend.name in known:
            counts[Stat.GTID_REPLICA_KNOWN] += 1
            return backend, f"{d.reason}; session: {backend.name} has {gtid}", None
        if _likely_behind(gs):
            return await _session_master(router, d, gtid)
    if gs.check_key != (gtid, backend.flavor) and not core.prepare_check(backend.flavor):
        counts[Stat.USE_MASTER_SESSION] += 1
        return (
            await router.backends.master(),
            f"{d.reason}; session: cannot check GTID {gtid!r}",
            None,
        )
    counts[Stat.GTID_CHECKS] += 1
    return backend, f"{d.reason}; session: checking {backend.name} has {gtid}", gs.check_sql


def _likely_behind(gs: GtidState) -> bool:
    """Replicas have recently needed longer than this to apply a write: a check now would
    most likely fail and cost a second round trip (the master serves the read)."""
    elapsed = time.monotonic() - gs.written_at if gs.written_at else float("inf")
    if elapsed < gs.apply_delay:
        gs.skipped_check()
        return True
    return False


async def _session_master(router: Router, d: Decision, gtid: str) -> tuple[Backend, str, None]:
    router.stats.counts[Stat.USE_MASTER_SESSION] += 1
    why = f"session: replicas are likely still applying {gtid}"
    return await router.backends.master(), f"{d.reason}; {why}", None


async def run_check(router: Router, cur: Any, sql: str, args: Any) -> bool:
    """Send *sql*, the check, maybe followed by the read in the same packet; True if the
    replica has the GTID, and then *cur* stands at the end of the check's result."""
    port = router.port
    await port.execute(cur, sql, args)
    row = await port.fetchone(cur)
    await port.fetchall(cur)  # an unbuffered cursor learns whether a result follows at its end
    passed = row is not None and (not router.core.gtid.check_is_wait or _first_value(row) == 0)
    if not passed:
        await _drain(
            router, cur
        )  # the read ran on the stale replica: drop its result, or its error
    return passed


def check_result(router: Router, backend: Backend, passed: bool) -> None:
    gs = router.core.gtid
    if passed:
        gs.confirm(backend.name)
        gs.check_passed()
    else:
        router.stats.counts[Stat.GTID_CHECK_FAILED] += 1
        gs.check_failed(time.monotonic() - gs.written_at if gs.written_at else 1.0)


async def session_step(router: Router, memo: Memo, query: str) -> Step | None:
    """A remembered session read, routed again: the GTID state chooses the server (a
    replica known to have the writes, one to check, or the master) without classifying
    the text again. None: route it the full way (reads avoid a server now)."""
    if (_down or _not_replicating) and router.backends.avoiding():
        return None
    backend, reason, check = await session_backend(router, memo.decided.d, memo.candidates)
    router.core.routed(backend.name, backend.role, memo.stat)
    if memo.dirty:
        backend.dirty = True
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug("%s -> %s: %s", cut_sql(query), backend.name, reason)
    return Step(query, backend, memo.decided, reason, check)


async def session_fallback(router: Router, step: Step) -> Step:
    """A session read whose replica lacks the GTID (or that cannot be checked per
    execution): the master serves it."""
    master = await router.backends.master()
    core = router.core
    core.last_used = master.name
    router.stats.counts[Stat.USE_MASTER_SESSION] += 1
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug(
            "%s -> %s: session check failed on %s",
            cut_sql(step.sql),
            master.name,
            step.backend.name,
        )
    return Step(step.sql, master, step.decided, step.reason)


def _first_value(row: Any) -> Any:
    """The first column of a row of any cursor class (a tuple, or a dict by column name)."""
    if type(row) is tuple:  # the default cursor, tested first: Mapping's check is slow
        return row[0]
    return next(iter(row.values())) if isinstance(row, Mapping) else row[0]


async def _drain(router: Router, cur: Any) -> None:
    """Skip the results left of a multi-statement reply. A server error in one (the read on
    a replica that lacks a just-created table) ends the reply: the read runs on the master
    anyway. A lost connection is raised."""
    try:
        while await router.port.nextset(cur):
            await router.port.fetchall(
                cur
            )  # unbuffered cursors: read to the end before the next result
    except err.MySQLError as exc:
        if health.is_disconnect(exc):
            raise
