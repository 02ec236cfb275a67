"""Flows over every backend session of one facade connection, sync or async: end the
transaction (commit, rollback), apply an API setting to each session, ping them. Written
once over the edge's port (msplugin.port); the facades hold the token and call these."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from pymysql import err
from pymysql.constants import SERVER_STATUS

from msplugin import driver, health
from msplugin._types import Role
from msplugin.backends import detail
from msplugin.follow import follow
from msplugin.recovery import quarantine_note
from msplugin.retry import lost_commit, read_only_refusal

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.router import Router

__all__ = ["broadcast", "end_transaction", "ping"]

logger = logging.getLogger("msplugin.connection")

_IN_TRANS: Final = SERVER_STATUS.SERVER_STATUS_IN_TRANS


async def end_transaction(router: Router, how: str) -> None:
    """COMMIT or ROLLBACK (*how*) on every backend with an open transaction.

    A connection lost on the way: commit raises OperationalError naming the server and
    saying whether the transaction did not commit (the connection broke before COMMIT was
    sent) or its outcome is unknown (COMMIT sent, no reply); rollback logs it (the server
    rolled back). The transaction is over either way.
    """
    core = router.core
    if core.closed:
        raise err.InterfaceError(0, "connection is closed")
    backends = router.backends
    if router.topology is not None and router.topology.view is not router.view:
        follow(router)  # a master demoted under the transaction: it ends here, clearly
    failure: err.OperationalError | None = None
    pinned = backends.by_name[core.pinned] if core.pinned is not None else None
    if pinned is not None and pinned.conn is None and core.optimistic is None:
        # (An optimistic transaction on a replica only read: nothing was lost with it.)
        failure = _lost_before(pinned, how)
    commit = how == "commit"
    port = router.port
    for b in backends.by_name.values():
        conn = b.conn  # server_status, not b.in_transaction: this runs at every commit
        if conn is None or not (b.dirty or b is pinned or conn.server_status & _IN_TRANS):
            continue
        try:
            if not commit:
                await port.rollback(conn)
            elif port.peer_closed(conn):
                # The server closed it while idle: COMMIT would be lost, so it is not sent.
                raise err.OperationalError(
                    health.CR_SERVER_GONE_ERROR, "the server closed the connection"
                )
            else:
                await port.commit(conn)
        except err.MySQLError as exc:
            failure = failure or _end_failed(router, b, how, exc)
            continue
        b.dirty = False
        if commit and b.role == Role.MASTER and router.committed(b):
            await router.inject(b)
    core.ended()
    if failure is not None:
        raise failure


def _lost_before(pinned: Backend, how: str) -> err.OperationalError | None:
    """The transaction's backend lost its connection before commit() or rollback()."""
    what = f"ended ({pinned.gone})" if pinned.gone else "was lost with its connection earlier"
    if how == "commit":
        return err.OperationalError(
            health.CR_SERVER_LOST,
            f"commit: {pinned.info}: the transaction open there {what} and did not commit",
        )
    logger.warning(
        "rollback: the transaction open on %s %s; the server rolled it back", pinned.info, what
    )
    return None


def _end_failed(
    router: Router, b: Backend, how: str, exc: err.MySQLError
) -> err.OperationalError | None:
    """COMMIT or ROLLBACK on *b* failed with *exc*: raise a server error; for a lost
    connection, the error commit() raises (None for rollback(), which logs it)."""
    if not health.is_disconnect(exc):
        b.dirty = False
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if router.topology is not None and read_only_refusal(code, exc.args[-1]):
            router.topology.recheck()
            raise err.OperationalError(
                code,
                f"{how}: {b.info} refused it as read-only: it is no longer the master; the "
                "transaction did not commit (the server rolled it back); run it again",
            ) from exc
        raise exc
    sent = not driver.not_sent(exc)
    why = quarantine_note(b)
    router.backends.lost(b, exc)
    if how == "rollback":
        logger.warning(
            "rollback: the connection to %s was lost (%s); the server rolled the transaction back",
            b.info,
            detail(exc),
        )
        return None
    return err.OperationalError(
        exc.args[0] if isinstance(exc.args[0], int) else health.CR_SERVER_LOST,
        f"commit: {b.info}: connection lost ({detail(exc)}); {why}{lost_commit(sent)}",
    )


async def broadcast(router: Router, method: str, *args: Any) -> None:
    """Apply an API setting (the driver connection's *method*) to every open backend. A
    backend whose connection is lost is dropped (the setting is recorded by the caller and
    applied when it reconnects); a transaction open there is lost, and the next statement
    of it says so."""
    backends = router.backends
    for b in backends.opened():
        try:
            await router.port.call(b.conn, method, *args)
        except err.MySQLError as exc:
            if not health.is_disconnect(exc):
                raise
            logger.warning("%s: connection lost (%s); dropped", b.info, detail(exc))
            backends.lost(b, exc)


async def ping(router: Router, reconnect: bool) -> None:
    """Ping every open backend; drop one that does not answer (OperationalError unless
    *reconnect*). With none left open, connect the master."""
    backends = router.backends
    failure: err.MySQLError | None = None
    for b in backends.opened():
        try:
            await router.port.ping(b.conn)
        except err.MySQLError as exc:
            if not health.is_disconnect(exc):
                raise
            backends.lost(b, exc)
            failure = failure or err.OperationalError(
                exc.args[0] if isinstance(exc.args[0], int) else health.CR_SERVER_LOST,
                f"ping: {b.info}: connection lost ({detail(exc)}); dropped",
            )
    if failure is not None and not reconnect:
        raise failure
    if not backends.opened():
        await backends.master()
