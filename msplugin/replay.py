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

from msplugin import driver, gtid_reads, health, statement
from msplugin._types import Level, Stat
from msplugin.classify import cut_sql
from msplugin.consistency import SESSION_STATE_CHANGED
from msplugin.core import AUTOCOMMIT
from msplugin.errors import OptimisticConflict
from msplugin.optimistic import Transaction, Verdict, admit, error_outcome, keep
from msplugin.state import NOTHING
from msplugin.step import Step

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.memo import Decided, Memo
    from msplugin.port import FacadeCursor as Cursor
    from msplugin.router import Router

__all__ = [
    "execute",
    "held_back",
    "move",
    "not_optimistic",
    "remembered_start",
    "send_deferred",
    "settle",
    "start",
    "start_failed",
]

route_logger = logging.getLogger("msplugin.routing")


async def start(cursor: Cursor, step: Step, args: Any) -> int:
    """Run the read that opens an optimistic transaction on its replica (*step*) and keep it.
    A replica session in autocommit mode gets START TRANSACTION READ ONLY first; one with
    autocommit off (an ORM's) opens the transaction with the read itself, as the master's
    would. Under session consistency a replica not known to have this connection's writes is
    checked first. A failed check, a lost replica, or an unbuffered cursor (its rows cannot
    be kept) sends the transaction to the master before anything of it ran."""
    router = cursor._router
    backend = step.backend
    if cursor._unbuffered:
        return await _on_master(cursor, step, args, "an unbuffered cursor's rows cannot be kept")
    cur = cursor._cursor_for(backend)
    cursor._current = cur
    try:
        check, step.check = step.check, None
        if check is not None:  # session consistency: the replica must have the writes
            passed = await gtid_reads.run_check(router, cur, check, None)
            gtid_reads.check_result(router, backend, passed)
            if not passed:
                return await _on_master(cursor, step, args, f"{backend.name} lacks the writes")
        conn = backend.conn
        assert conn is not None
        if conn.server_status & AUTOCOMMIT:
            await router.port.execute(cur, "START TRANSACTION READ ONLY", None)
        result = await router.port.execute(cur, step.sql, args)
    except err.MySQLError as exc:
        return await start_failed(cursor, step, args, exc)
    _remember(router, step)
    await _began(router, backend, step.sql, args, step.decided, cur)
    return result


def _remember(router: Router, step: Step) -> None:
    """*step*'s read opened an optimistic transaction on its replica: remember it, so that
    it opens the next one without being routed again, when nothing but its text and the
    state decided where it went: not under session consistency (a GTID check may decide).
    The core remembers nothing in a state where more decides (a filter choosing servers,
    a lag limit, a failed server: see ConnectionCore.moved)."""
    core = router.core
    if step.decided.d.consistency != Level.EVENTUAL:
        return
    backend = step.backend
    assert backend.conn is not None
    status = backend.conn.server_status
    core.remember(core.memo, step.sql, step.decided, step.reason, backend.name,
                  router.slave_names, False, status)  # fmt: skip


async def remembered_start(
    cursor: Cursor, memo: Memo, backend: Backend, query: str, args: Any
) -> int:
    """Remembered *query* (``memo.start``) opens an optimistic transaction on replica
    *backend*, connected and picked by the load balancer, without being routed again. The
    caller holds the connection's token."""
    core = cursor._core
    name = backend.name
    if cursor._unbuffered:  # the full path sends it to the master
        return await statement.run_routed(cursor, query, args)
    backend.dirty = True
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug("%s -> %s: %s", cut_sql(query), name, memo.reason)
    conn = backend.conn
    assert conn is not None
    core.hit(memo, name)  # counted as the full path counts it (memo.stat, memo.role_stat)
    if conn.server_status & AUTOCOMMIT:
        return await start(cursor, Step(query, backend, memo.decided, memo.reason), args)
    # start(), for the common case: a replica session with autocommit off (an ORM's).
    cur = cursor._cursor_for(backend)
    cursor._current = cur
    try:
        result = await cursor._router.port.execute(cur, query, args)
    except err.MySQLError as exc:
        return await start_failed(
            cursor, Step(query, backend, memo.decided, memo.reason), args, exc
        )
    await _began(cursor._router, backend, query, args, memo.decided, cur)
    return result


async def start_failed(cursor: Cursor, step: Step, args: Any, exc: err.MySQLError) -> int:
    """The read that was to open an optimistic transaction failed on its replica: a server
    error is the application's (raised); a lost replica leaves the transaction to the master."""
    router = cursor._router
    backend = step.backend
    if not health.is_disconnect(exc):
        await _rollback(router, backend)
        raise exc
    router.backends.lost(backend, exc)
    return await _on_master(cursor, step, args, f"the connection to {backend.info} was lost")


async def _began(
    router: Router, backend: Backend, query: str, args: Any, decided: Decided, cur: Any
) -> None:
    """*query* opened an optimistic transaction on *backend*: Router.began() (and the
    injection statements it may ask for)."""
    if router.began(backend, query, args, decided, cur):
        await router.inject(backend)


async def _learn(router: Router, backend: Backend, query: str, decided: Decided, cur: Any) -> None:
    """Learn from the reply to a read of an optimistic transaction on *backend*: the full
    way when it carries session state (moved() then decides the state anew), else as the
    core learns from a plain read (optimistic_read())."""
    conn = backend.conn
    assert conn is not None
    if conn.server_status & SESSION_STATE_CHANGED or decided.eff is not NOTHING:
        await router.learned(Step(query, backend, decided, decided.d.reason), cur)
    else:
        router.core.optimistic_read(backend.name)


async def execute(cursor: Cursor, query: str, args: Any) -> int:
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
        return await _stay(cursor, trx, replica, query, args)
    if verdict is Verdict.END:
        return await statement.run_routed(cursor, query, args)
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug("%s: %s", cut_sql(query), trx.reason(verdict, why))
    if verdict is Verdict.CONFLICT:
        await _rollback(router, replica)
        core.optimistic_over(Stat.OPTIMISTIC_CONFLICTS)
        raise OptimisticConflict(f"{trx.reason(verdict, why)}; it was rolled back: run it again")
    await move(cursor, trx, why)
    return await statement.run_routed(cursor, query, args)


async def settle(cursor: Cursor, why: str) -> None:
    """A call that runs outside execute() (executemany(), callproc()) needs the master: an
    optimistic transaction open on a replica moves there first."""
    trx = cursor._router.core.optimistic
    if trx is not None:
        await move(cursor, trx, why)


async def _stay(cursor: Cursor, trx: Transaction, replica: Backend, query: str, args: Any) -> int:
    router = cursor._router
    step = await router.route(query)  # the transaction's replica
    cur = cursor._cursor_for(replica)
    cursor._current = cur
    try:
        result = await router.port.execute(cur, query, args)
    except err.MySQLError as exc:
        if health.is_disconnect(exc):
            # Only reads ran there: the master can answer them all, this one included.
            router.backends.lost(replica, exc)
            await move(cursor, trx, f"the connection to {replica.info} was lost")
            return await statement.run_routed(cursor, query, args)
        keep(trx, query, args, error_outcome(exc.args[0], str(exc.args[-1])))
        raise
    await _learn(router, replica, query, step.decided, cur)
    keep(trx, query, args, driver.result_facts(cur))
    return result


async def move(cursor: Cursor, trx: Transaction, why: str) -> None:
    """Roll the transaction back on its replica and run its kept reads again on the master,
    which then holds it; OptimisticConflict (the master rolled back) if one answers
    differently. Only reads are run again: a write never is. A transaction the application
    opened with BEGIN (held back: trx.begin) starts on the master with that text."""
    router = cursor._router
    core = router.core
    await _rollback(router, router.by_name[trx.replica])
    core.optimistic_over(None)
    if not trx.kept:
        if trx.begin is not None:  # sent before the statement that moves it
            core.defer_again(trx.begin)
        return
    core.counts[Stat.OPTIMISTIC_REPLAYED] += 1
    master = await router.backends.master()
    port = router.port
    cur = cursor._cursor_for(master)
    cursor._current = cur
    if trx.begin is not None:  # the master's session runs with autocommit on
        try:
            await port.execute(cur, trx.begin, None)
        except err.MySQLError as exc:
            raise await _lost_replaying(router, master, trx, why, exc) from exc
    for i, (query, args, result) in enumerate(trx.kept):
        try:
            await port.execute(cur, query, args)
            got = driver.result_facts(cur)
        except err.MySQLError as exc:
            got = error_outcome(exc.args[0], str(exc.args[-1]))
            if health.is_disconnect(exc):
                raise await _lost_replaying(router, master, trx, why, exc) from exc
        if got != result:
            await _rollback(router, master)
            core.conflicted()
            raise OptimisticConflict(
                f"{trx.reason(Verdict.MOVE, why)}; read {i + 1} of {len(trx.kept)} "
                f"({cut_sql(query)}) answered differently there; the transaction was "
                "rolled back: run it again"
            )
    master.dirty = True
    core.optimistic_moved(master.name)


async def _lost_replaying(
    router: Router, master: Backend, trx: Transaction, why: str, exc: err.MySQLError
) -> err.MySQLError:
    """The error for *exc*, raised while the moving transaction started on *master*: its
    connection lost (nothing was written), or the server's own error (the master rolls back)."""
    if not health.is_disconnect(exc):
        await _rollback(router, master)
        return exc
    router.backends.lost(master, exc)
    return err.OperationalError(
        health.CR_SERVER_LOST,
        f"{trx.reason(Verdict.MOVE, why)}; the connection to {master.info} was lost "
        "while its reads ran again there; nothing was written: run it again",
    )


def held_back(cursor: Cursor, query: str) -> bool:
    """BEGIN or START TRANSACTION that the core holds back (ConnectionCore.defer()): nothing
    is sent, and the cursor shows the OK result the server would have sent. The caller
    holds the connection's token."""
    router = cursor._router
    core = router.core
    if cursor._unbuffered or not core.defer(query, core.decided(query, router.classifier).c):
        return False
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug(
            "%s: held back: the transaction opens at its first statement, on a replica if "
            "that is a plain read (trx_stickiness optimistic)",
            cut_sql(query),
        )
    cursor._current = router.port.empty_result(cursor._cursorclass, query)
    return True


async def send_deferred(cursor: Cursor, step: Step) -> None:
    """*step* opens the transaction of a held-back BEGIN: on a replica, start() opens it
    there (read only); elsewhere the BEGIN goes first. If it does not reach the server it
    is held back again, so that a statement run again after a lost connection sends it too."""
    if step.opens_on_replica():
        return
    router = cursor._router
    core = router.core
    sql = core.deferred_sent()
    backend = step.backend
    cur = cursor._cursor_for(backend)
    try:
        await router.port.execute(cur, sql, None)
    except err.MySQLError:
        core.defer_again(sql)
        raise
    decided = core.decided(sql, router.classifier)
    await router.learned(Step(sql, backend, decided, "held back until the first statement"), cur)


async def _on_master(cursor: Cursor, step: Step, args: Any, why: str) -> int:
    """The transaction *step* would have started on a replica starts on the master."""
    master = await not_optimistic(cursor, step, why)
    return await statement.run(cursor, master, cursor._cursor_for(master.backend), args)


async def not_optimistic(cursor: Cursor, step: Step, why: str) -> Step:
    """*step* on the master if it would start an optimistic transaction on a replica (for a
    call whose results cannot be kept); else *step*."""
    if not step.opens_on_replica():
        return step
    router = cursor._router
    master = await router.backends.master()
    reason = f"{step.reason}; {why}: it runs on the master"
    if route_logger.isEnabledFor(logging.DEBUG):
        route_logger.debug("%s -> %s: %s", cut_sql(step.sql), master.name, reason)
    router.core.started_on_master(master.name)
    master.dirty = True
    return Step(step.sql, master, step.decided, reason)


async def _rollback(router: Router, backend: Backend) -> None:
    """End what is open on *backend* (only reads ran there); a lost connection ended it."""
    backend.dirty = False
    conn = backend.conn
    if conn is None:
        return
    try:
        await router.port.rollback(conn)
    except err.MySQLError as exc:
        if health.is_disconnect(exc):
            router.backends.lost(backend, exc)
        else:
            raise
