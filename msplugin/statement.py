"""One statement's flow through a facade cursor, sync or async: route it, run it, learn from
the reply, recover from a failure. Written once over the edge's port (msplugin.port).

A statement the core remembered runs on each facade cursor's own short path (one lookup,
the driver's execute, one comparison); everything else comes here: ``routed`` is the full
decision, ``run_again`` the retry loop that msplugin.recovery decides, ``session_read`` a
remembered read whose server the GTID state chooses again, ``run_once`` the calls that are
never retried (executemany, callproc).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pymysql import err

from msplugin import gtid_reads, recovery, replay
from msplugin.consistency import CAUSAL_READ
from msplugin.filters import record_latency
from msplugin.step import Step

# A Galera node timed out waiting for the cluster's writes (repl.causal_read_timeout).
ER_LOCK_WAIT_TIMEOUT: Final = 1205

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.memo import Memo
    from msplugin.port import FacadeCursor
    from msplugin.router import Router

__all__ = [
    "callproc",
    "executemany",
    "recalled",
    "remembered_failed",
    "routed",
    "run",
    "run_again",
    "run_once",
    "run_routed",
    "session_read",
]

_T = TypeVar("_T")


async def routed(cursor: FacadeCursor, query: str, args: Any, picked: Any = None) -> int:
    """Route *query* the full way, run it, and recover from a failure. *picked*: the slave
    a remembered route picked but found unconnected. The caller holds the token."""
    core = cursor._core
    if core.optimistic is not None:
        return await replay.execute(cursor, query, args)
    if core.optimistic_on and replay.held_back(cursor, query):
        return 0
    return await run_routed(cursor, query, args, picked)


async def recalled(cursor: FacadeCursor, query: str, args: Any) -> int:
    """A statement the edge's short path did not run (Router.recall() said None): not
    remembered (the full path), or a session read, a read that must avoid a server, a
    server to connect, a read that opens an optimistic transaction."""
    router = cursor._router
    memo = router.hit
    if memo is None:
        return await routed(cursor, query, args)
    backend, router.recalled = router.recalled, None
    if backend is None:
        if memo.session:  # the GTID state chooses its server
            return await session_read(cursor, memo, query, args)
        return await routed(cursor, query, args)  # reads must avoid a server
    if backend.conn is None:  # not connected yet, or lost: the full path connects it
        return await routed(cursor, query, args, backend if memo.candidates else None)
    # it opens an optimistic transaction: the replica keeps its result
    return await replay.remembered_start(cursor, memo, backend, query, args)


async def remembered_failed(
    cursor: FacadeCursor,
    memo: Memo,
    backend: Backend,
    query: str,
    args: Any,
    exc: err.MySQLError,
) -> int:
    """A remembered statement failed on *backend* (the short path): count it as routed,
    and recover as from any statement (a read that was to open an optimistic transaction
    as msplugin.replay decides)."""
    cursor._core.hit(memo, backend.name)
    if memo.start:
        return await replay.start_failed(
            cursor, Step(query, backend, memo.decided, memo.reason), args, exc
        )
    step = cursor._router.step(memo, backend, query)
    return await run_again(cursor, exc, args, cursor._current, step)


async def run_routed(cursor: FacadeCursor, query: str, args: Any, picked: Any = None) -> int:
    """routed() with no optimistic transaction open on a replica."""
    step = await cursor._router.route(query, picked)
    try:
        cur = cursor._cursor_for(step.backend)
        return await run(cursor, step, cur, args)
    except err.MySQLError as exc:
        return await run_again(cursor, exc, args, cursor._current, step)


async def run(cursor: FacadeCursor, step: Step, cur: Any, args: Any) -> int:
    """Run routed *step* with driver cursor *cur* and learn from its reply."""
    if cursor._core.deferred is not None:  # the first statement after a held-back BEGIN
        await replay.send_deferred(cursor, step)
    if step.opens_on_replica():
        return await replay.start(cursor, step, args)  # the replica keeps what it answers
    cursor._current = cur
    if step.check is not None:
        return await execute_checked(cursor, step, cur, args)
    router = cursor._router
    if router.timed:  # fastest_response: the round trip feeds its server's moving average
        start = time.perf_counter()
        result = await router.port.execute(cur, step.sql, args)
        record_latency(step.backend.address, time.perf_counter() - start)
    else:
        result = await router.port.execute(cur, step.sql, args)
    await router.learned(step, cur)
    return result


async def run_again(
    cursor: FacadeCursor, exc: err.MySQLError, args: Any, cur: Any, step: Step
) -> int:
    """The statement failed: run it again where the rules allow (see msplugin.retry), else
    raise. The failed backend is the last used one (a session check may have moved the
    read to the master)."""
    router = cursor._router
    attempt = 0
    while True:
        failed = router.last_used
        assert failed is not None
        if failed is not step.backend:
            step = router.step_on(step, failed)
        step = await recovery.recover(router, step, exc, args, cur, attempt)
        attempt += 1
        try:
            cur = cursor._cursor_for(step.backend)
            return await run(cursor, step, cur, args)
        except err.MySQLError as again:
            exc = again


async def session_read(cursor: FacadeCursor, memo: Memo, query: str, args: Any) -> int:
    """A remembered session read: its server is chosen again (the GTID state decides),
    its text is not classified again. The caller holds the connection's token."""
    router = cursor._router
    step = await gtid_reads.session_step(router, memo, query)
    if step is None:
        return await routed(cursor, query, args)
    try:
        cur = cursor._cursor_for(step.backend)
        cursor._current = cur
        if step.check is not None:
            return await execute_checked(cursor, step, cur, args, memo)
        result = await router.port.execute(cur, query, args)
    except err.MySQLError as exc:
        return await run_again(cursor, exc, args, cursor._current, step)
    await session_read_ran(cursor, step, cur, memo)
    return result


async def execute_checked(
    cursor: FacadeCursor, step: Step, cur: Any, args: Any, memo: Memo | None = None
) -> int:
    """A session-consistent read: run it on the replica only if it has the GTID.

    With multi-statements enabled on the replica the check travels in the same packet as
    the read (one round trip); its result is discarded if the check fails. Either way a
    failed check re-runs the read on the master; only reads get here, so running one
    twice is harmless.
    """
    router = cursor._router
    port = router.port
    check, backend, query = step.check, step.backend, step.sql
    assert check is not None
    step.check = None
    if check is CAUSAL_READ:
        if await causal_read(router, cur, query, args):
            gtid_reads.check_result(router, backend, True)
            await session_read_ran(cursor, step, cur, memo)
            return int(cur.rowcount)
    elif backend.multi_statements:
        # The driver interpolates args into the whole text: a % of the check must be doubled.
        prefix = check if args is None else check.replace("%", "%%")
        if await gtid_reads.run_check(router, cur, f"{prefix};{query}", args):
            await port.nextset(cur)
            gtid_reads.check_result(router, backend, True)
            await session_read_ran(cursor, step, cur, memo)
            return int(cur.rowcount)
    elif await gtid_reads.run_check(router, cur, check, None):
        gtid_reads.check_result(router, backend, True)
        result = await port.execute(cur, query, args)
        await session_read_ran(cursor, step, cur, memo)
        return result
    gtid_reads.check_result(router, backend, False)
    master = await gtid_reads.session_fallback(router, step)
    mcur = cursor._cursor_for(master.backend)
    cursor._current = mcur
    result = await port.execute(mcur, query, args)
    await router.learned(master, mcur)
    return result


async def causal_read(router: Router, cur: Any, query: str, args: Any) -> bool:
    """A session read on a Galera node, made to wait there for the cluster's writes; False
    when the node timed out waiting (the writer serves it then)."""
    try:
        await router.port.execute(cur, CAUSAL_READ + query, args)
    except err.OperationalError as exc:
        if exc.args[0] != ER_LOCK_WAIT_TIMEOUT:
            raise
        return False
    return True


async def session_read_ran(cursor: FacadeCursor, step: Step, cur: Any, memo: Memo | None) -> None:
    """A session read was answered (by a replica that has the GTID, or unchecked): learn
    from the reply, a remembered read by one comparison."""
    status: int = cur.connection.server_status
    if memo is None or not cursor._core.ran_session(memo, step.backend.name, status):
        await cursor._router.learned(step, cur)


async def executemany(cursor: FacadeCursor, query: str, args: Any) -> int | None:
    """Route *query* once and run it for every item of *args* on that backend."""
    router = cursor._router
    await replay.settle(cursor, "executemany() runs on the master")
    step = await replay.not_optimistic(cursor, await router.route(query), "executemany()")
    if step.check is not None:
        # A session read that would need a per-execution check: the master has the data.
        step = await gtid_reads.session_fallback(router, step)
    port = router.port
    return await run_once(
        cursor,
        step,
        lambda cur: port.executemany(cur, query, args),
        "executemany() is never retried",
    )


async def callproc(cursor: FacadeCursor, procname: str, args: Any) -> Any:
    """Call a stored procedure on the master."""
    router = cursor._router
    await replay.settle(cursor, "a procedure call runs on the master")
    step = await router.route("CALL")
    port = router.port
    return await run_once(
        cursor,
        step,
        lambda cur: port.callproc(cur, procname, args),
        "a procedure call is never retried",
    )


async def run_once(
    cursor: FacadeCursor, step: Step, call: Callable[[Any], Awaitable[_T]], refusal: str
) -> _T:
    """Run a call that is never retried (it may have run in part): a lost connection
    raises with *refusal*."""
    if cursor._core.deferred is not None:
        await replay.send_deferred(cursor, step)
    cur = cursor._cursor_for(step.backend)
    cursor._current = cur
    try:
        result = await call(cur)
    except err.MySQLError as exc:
        recovery.raise_if_lost(cursor._router, step.backend, exc, refusal)
        raise
    await cursor._router.learned(step, cur)
    return result
