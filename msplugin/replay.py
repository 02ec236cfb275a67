"""The edge of optimistic transactions: start one on a replica, keep its reads, move it.

msplugin.optimistic decides what each statement of an optimistic transaction does; these
functions do it with the facade cursor's connections: run the first read on the replica and
keep its result, keep each further read, and when a statement must run on the master
roll the replica back, run the kept reads again on the master and compare. They take the
facade cursor, as msplugin.recovery takes the router.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pymysql import err

from msplugin import driver, gtid_reads, health
from msplugin._types import Role, Stat
from msplugin.classify import cut_sql
from msplugin.consistency import SESSION_STATE_CHANGED
from msplugin.core import AUTOCOMMIT
from msplugin.errors import OptimisticConflict
from msplugin.health import down as _down
from msplugin.monitor import not_replicating as _not_replicating
from msplugin.optimistic import Transaction, Verdict, admit, error_outcome, keep
from msplugin.state import NOTHING
from msplugin.step import Step

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.cursor import Cursor
    from msplugin.memo import Decided
    from msplugin.router import Router

__all__ = ["execute", "move", "not_optimistic", "remembered_start", "settle", "start"]

route_logger = logging.getLogger("msplugin.routing")


def start(cursor: Cursor, step: Step, args: Any) -> int:
    """Run the read that opens an optimistic transaction on its replica (*step*) and keep it.
    A replica session in autocommit mode gets START TRANSACTION READ ONLY first; one with
    autocommit off (an ORM's) opens the transaction with the read itself, as the master's
    would. Under session consistency a replica not known to have this connection's writes is
    checked first. A failed check, a lost replica, or an unbuffered cursor (its rows cannot
    be kept) sends the transaction to the master before anything of it ran."""
    router = cursor._router
    backend = step.backend
    if cursor._unbuffered:
        return _on_master(cursor, step, args, "an unbuffered cursor's rows cannot be kept")
    cur = cursor._cursor_for(backend)
    cursor._current = cur
    try:
        check, step.check = step.check, None
        if check is not None:  # session consistency: the replica must have the writes
            passed = gtid_reads.run_check(router, cur, check, None)
            gtid_reads.check_result(router, backend, passed)
            if not passed:
                return _on_master(cursor, step, args, f"{backend.name} lacks the writes")
        conn = backend.conn
        assert conn is not None
        if conn.server_status & AUTOCOMMIT:
            cur.execute("START TRANSACTION READ ONLY")
        result = cur.execute(step.sql, args)
    except err.MySQLError as exc:
        return _start_failed(cursor, step, args, exc)
    _began(router, backend, step.sql, args, step.decided, cur)
    return result


def remembered_start(cursor: Cursor, query: str, args: Any) -> int | None:
    """*query* started an optimistic transaction on a replica before: start one again
    without routing it (the load balancer picks the replica); None: route it the full way."""
    router = cursor._router
    core = router.core
    decided = core.start(query)
    if decided is None or cursor._unbuffered:
        return None
    if (_down or _not_replicating) and router.backends.avoiding():
        return None
    names = router.slave_names
    backend = router.by_name[router.picker.pick(names)]
    conn = backend.conn
    if conn is None:  # connected (or failed over) as the full path would
        backend = router.backends.slave(names, backend)
        if backend.role != Role.SLAVE:
            return None
    name = backend.name
    core.routed(name, Role.SLAVE, Stat.OPTIMISTIC_STARTED)
    backend.dirty = True
    reason = decided.d.reason
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug("%s -> %s: %s", cut_sql(query), name, reason)
    if conn is None or conn.server_status & AUTOCOMMIT:
        return start(cursor, Step(query, backend, decided, reason), args)
    # start(), for the common case: a connected replica whose session has autocommit off.
    cur = cursor._cursors.get(name)
    if cur is None or cur.connection is not conn:
        cur = cursor._cursor_for(backend)
    cursor._current = cur
    try:
        result = cur.execute(query, args)
    except err.MySQLError as exc:
        return _start_failed(cursor, Step(query, backend, decided, reason), args, exc)
    _began(router, backend, query, args, decided, cur)
    return result


def _start_failed(cursor: Cursor, step: Step, args: Any, exc: err.MySQLError) -> int:
    """The read that was to open an optimistic transaction failed on its replica: a server
    error is the application's (raised); a lost replica leaves the transaction to the master."""
    router = cursor._router
    backend = step.backend
    if not health.is_disconnect(exc):
        _rollback(router, backend)
        raise exc
    router.backends.lost(backend, exc)
    return _on_master(cursor, step, args, f"the connection to {backend.info} was lost")


def _began(
    router: Router, backend: Backend, query: str, args: Any, decided: Decided, cur: Any
) -> None:
    """*query* opened an optimistic transaction on *backend*: learn from its reply, keep it."""
    core = router.core
    conn = backend.conn
    assert conn is not None
    if conn.server_status & SESSION_STATE_CHANGED or decided.eff is not NOTHING:
        router.after(Step(query, backend, decided, decided.d.reason), cur)
    elif core.tracker is not None:  # what learn() does with a plain read's reply
        core.tracker.found_rows_home = backend.name
    core.optimistic_began(backend.name, query, decided)
    trx = core.optimistic
    assert trx is not None
    keep(trx, query, args, driver.result_facts(cur))


def execute(cursor: Cursor, query: str, args: Any) -> int:
    """Run *query* in the optimistic transaction open on a replica (see the module)."""
    router = cursor._router
    core = router.core
    trx = core.optimistic
    assert trx is not None
    replica = router.by_name[trx.replica]
    if replica.conn is None:
        verdict, why = Verdict.MOVE, f"the connection to {replica.info} was lost"
    elif cursor._unbuffered:
        verdict, why = Verdict.MOVE, "an unbuffered cursor's rows cannot be kept"
    else:
        verdict, why = admit(trx, query, core.caps)
    if verdict is Verdict.STAY:
        return _stay(cursor, trx, replica, query, args)
    if verdict is Verdict.END:
        return cursor._run_routed(query, args)
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug("%s: %s", cut_sql(query), trx.reason(verdict, why))
    if verdict is Verdict.CONFLICT:
        _rollback(router, replica)
        core.optimistic_over(Stat.OPTIMISTIC_CONFLICTS)
        raise OptimisticConflict(f"{trx.reason(verdict, why)}; it was rolled back: run it again")
    move(cursor, trx, why)
    return cursor._run_routed(query, args)


def settle(cursor: Cursor, why: str) -> None:
    """A call that runs outside execute() (executemany(), callproc()) needs the master: an
    optimistic transaction open on a replica moves there first."""
    trx = cursor._router.core.optimistic
    if trx is not None:
        move(cursor, trx, why)


def _stay(cursor: Cursor, trx: Transaction, replica: Backend, query: str, args: Any) -> int:
    router = cursor._router
    step = router.route(query)  # the transaction's replica
    cur = cursor._cursor_for(replica)
    cursor._current = cur
    try:
        result = cur.execute(query, args)
    except err.MySQLError as exc:
        if health.is_disconnect(exc):
            # Only reads ran there: the master can answer them all, this one included.
            router.backends.lost(replica, exc)
            move(cursor, trx, f"the connection to {replica.info} was lost")
            return cursor._run_routed(query, args)
        keep(trx, query, args, error_outcome(exc.args[0], str(exc.args[-1])))
        raise
    router.after(step, cur)
    keep(trx, query, args, driver.result_facts(cur))
    return result


def move(cursor: Cursor, trx: Transaction, why: str) -> None:
    """Roll the transaction back on its replica and run its kept reads again on the master,
    which then holds it; OptimisticConflict (the master rolled back) if one answers
    differently. Only reads are run again: a write never is."""
    router = cursor._router
    core = router.core
    _rollback(router, router.by_name[trx.replica])
    core.optimistic_over(None)
    if not trx.kept:
        return
    core.counts[Stat.OPTIMISTIC_REPLAYED] += 1
    master = router.backends.master()
    cur = cursor._cursor_for(master)
    cursor._current = cur
    for i, (query, args, result) in enumerate(trx.kept):
        try:
            cur.execute(query, args)
            got = driver.result_facts(cur)
        except err.MySQLError as exc:
            if health.is_disconnect(exc):
                router.backends.lost(master, exc)
                raise err.OperationalError(
                    health.CR_SERVER_LOST,
                    f"{trx.reason(Verdict.MOVE, why)}; the connection to {master.info} was lost "
                    "while its reads ran again there; nothing was written: run it again",
                ) from exc
            got = error_outcome(exc.args[0], str(exc.args[-1]))
        if got != result:
            _rollback(router, master)
            core.conflicted()
            raise OptimisticConflict(
                f"{trx.reason(Verdict.MOVE, why)}; read {i + 1} of {len(trx.kept)} "
                f"({cut_sql(query)}) answered differently there; the transaction was "
                "rolled back: run it again"
            )
    master.dirty = True
    core.optimistic_moved(master.name)


def _on_master(cursor: Cursor, step: Step, args: Any, why: str) -> int:
    """The transaction *step* would have started on a replica starts on the master."""
    master = not_optimistic(cursor, step, why)
    return cursor._run(master, cursor._cursor_for(master.backend), args)


def not_optimistic(cursor: Cursor, step: Step, why: str) -> Step:
    """*step* on the master if it would start an optimistic transaction on a replica (for a
    call whose results cannot be kept); else *step*."""
    if step.decided.d.stat is not Stat.OPTIMISTIC_STARTED or step.backend.role != Role.SLAVE:
        return step
    router = cursor._router
    master = router.backends.master()
    reason = f"{step.reason}; {why}: it runs on the master"
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug("%s -> %s: %s", cut_sql(step.sql), master.name, reason)
    router.core.started_on_master(master.name)
    master.dirty = True
    return Step(step.sql, master, step.decided, reason)


def _rollback(router: Router, backend: Backend) -> None:
    """End what is open on *backend* (only reads ran there); a lost connection ended it."""
    backend.dirty = False
    conn = backend.conn
    if conn is None:
        return
    try:
        conn.rollback()
    except err.MySQLError as exc:
        if health.is_disconnect(exc):
            router.backends.lost(backend, exc)
        else:
            raise
