"""What happens after a statement failed: it runs again, or the application gets an error
that says what became of it.

The rules are msplugin.retry's (pure); this module applies them to the failure at hand: it
tells the quarantine, drops the broken connection, refuses a statement larger than the
server's max_allowed_packet with a clear message, and routes a statement that may run again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from pymysql import err

from msplugin import driver, health
from msplugin._types import Stat
from msplugin.backends import Backend, detail
from msplugin.classify import cut_sql, first_keyword
from msplugin.errors import NoBackendAvailable
from msplugin.follow import after_read_only
from msplugin.retry import (
    after_certification_failure,
    after_disconnect,
    after_server_error,
    lost_transaction,
    read_only_refusal,
    read_only_retry,
)
from msplugin.routing import NO_TRANSACTION

if TYPE_CHECKING:
    from msplugin.router import Router
    from msplugin.step import Step

__all__ = ["lost_error", "quarantine_note", "raise_if_lost", "recover"]

logger = logging.getLogger("msplugin.connection")

# Server errors after which the server closes the session: the packet was larger than its
# max_allowed_packet, the connection was killed, or it timed out idle (MySQL 8.0.24+).
ER_NET_PACKET_TOO_LARGE: Final = 1153
_SESSION_ENDED: Final = frozenset({ER_NET_PACKET_TOO_LARGE, 1927, 4031})
_MIN_PACKET: Final = 1024  # the smallest max_allowed_packet a server accepts


async def recover(
    router: Router,
    step: Step,
    exc: err.MySQLError,
    args: Any,
    cur: Any,
    attempt: int,
) -> Step:
    """After *exc* from running *step*: the step to run it again, or raise. A statement
    that never reached the server, or a read whose connection broke, runs again once
    (see msplugin.retry); a statement the server refused with a transient error code
    runs again on the same server."""
    backend, query, c = step.backend, step.sql, step.decided.c
    trx = router.core.trx_context()  # before closing: learned from the master's replies
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    disconnect = health.is_disconnect(exc)
    if disconnect or code in _SESSION_ENDED:
        await refuse_oversized(router, backend, exc, query, args, cur, trx)
    if not disconnect:
        if router.topology is not None and read_only_refusal(code, exc.args[-1]):
            return await read_only_master(router, step, exc, trx, attempt)
        if after_certification_failure(code, router.core.cluster, trx, attempt):
            router.stats.counts[Stat.CERTIFICATION_RETRIES] += 1
            logger.warning(
                "%s: %s aborted it (certification conflict, %s); it did not commit and "
                "runs again once there",
                cut_sql(query),
                backend.info,
                exc.args[-1],
            )
            return step
        if code in _SESSION_ENDED:
            # The server ended this session and answered: no quarantine.
            router.backends.discard(backend, siblings=False)
            raise exc
        return await transient(router, step, exc, code, trx, attempt)
    sent = not driver.not_sent(exc)
    tracker = router.core.tracker
    held = tracker is not None and tracker.holds_state(backend.name)
    why = quarantine_note(backend)  # before _lost: what was known of the server
    router.backends.lost(backend, exc)
    others = router.group.failover.strategy != "disabled" or any(
        n != backend.name for n in router.backends.healthy()
    )
    refusal = (
        "it was already retried once"
        if attempt
        else after_disconnect(c, backend.role, trx, step.decided.eff, held, others, sent)
    )
    if refusal is not None:
        raise lost_error(router, backend, exc, refusal, trx, step, sent, why) from exc
    retry_on = await route_again(router, backend, query, sent)
    router.stats.counts["read_retries" if sent else "unsent_retries"] += 1
    logger.warning(
        "%s: connection to %s lost (%s)%s; it runs again on %s",
        cut_sql(query),
        backend.info,
        detail(exc),
        "" if sent else " before the statement was sent",
        retry_on.backend.info,
    )
    return retry_on


async def route_again(router: Router, failed: Backend, query: str, sent: bool) -> Step:
    """Route *query* again after its connection to *failed* broke. A read that may have
    reached *failed* goes elsewhere; a statement that never reached it is routed anew."""
    core = router.core
    if not sent or failed.name in core.failed:
        return await router.route(query)
    forget = not router.group.failover.remember_failed
    core.mark_failed(failed.name)
    try:
        return await router.route(query)
    finally:
        if forget:
            core.unmark_failed(failed.name)


async def read_only_master(
    router: Router, step: Step, exc: err.MySQLError, trx: str, attempt: int
) -> Step:
    """The master refused *step* as read-only (topology.discover): the roles changed and
    the watch has not seen it yet. An autocommit statement did not run: it runs again,
    once, on the new master (waiting for one at most topology.wait). In a transaction it
    fails as the server said; the roles, once seen, end the transaction."""
    watch = router.topology
    assert watch is not None
    watch.recheck()
    backend = step.backend
    if not read_only_retry(backend.role, trx, attempt):
        raise exc
    refused_by = f"{backend.name} ({backend.info.host}:{backend.info.port})"
    try:
        await after_read_only(router, backend.name)
    except NoBackendAvailable as none:
        raise none from exc
    router.stats.counts[Stat.READ_ONLY_RETRIES] += 1
    retry_on = await router.route(step.sql)
    logger.warning(
        "%s: %s refused it as read-only (it is no longer the master); it runs again on %s",
        cut_sql(step.sql),
        refused_by,
        retry_on.backend.info,
    )
    return retry_on


async def transient(
    router: Router, step: Step, exc: err.MySQLError, code: int, trx: str, attempt: int
) -> Step:
    """A server error: *step* again if its code is a transient_error one, else raise."""
    backend, query = step.backend, step.sql
    te = router.group.transient_error
    if te is None or attempt >= te.max_retries:
        raise exc
    if not after_server_error(code, te.mysql_error_codes, trx):
        raise exc
    router.stats.counts[Stat.TRANSIENT_ERROR_RETRIES] += 1
    logger.info(
        "%s: error %d on %s, a transient error: retry %d of %d in %d us",
        cut_sql(query),
        code,
        backend.info,
        attempt + 1,
        te.max_retries,
        te.usleep_retry,
    )
    await router.port.sleep(te.usleep_retry / 1_000_000)
    return step


def lost_error(
    router: Router,
    backend: Backend,
    exc: BaseException,
    refusal: str,
    trx: str = NO_TRANSACTION,
    step: Step | None = None,
    sent: bool = True,
    why: str = "",
) -> err.OperationalError:
    """The error for a statement whose connection broke and that is not run again: the
    server, what broke, why it was not retried, and what became of an open transaction."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) and exc.args[0] else 0
    message = (
        f"{backend.info}: connection lost ({detail(exc)}); "
        f"{why}the statement was not retried: {refusal}"
    )
    if trx != NO_TRANSACTION:
        kind = step.decided.c.trx if step is not None else ""
        first = first_keyword(step.sql) if step is not None else ""
        message += "; " + lost_transaction(kind, first, sent)
    return err.OperationalError(code or health.CR_SERVER_LOST, message)


async def refuse_oversized(
    router: Router,
    backend: Backend,
    exc: err.MySQLError,
    query: str,
    args: Any,
    cur: Any,
    trx: str,
) -> None:
    """Raise a clear error if the server dropped the connection because the statement
    was larger than its max_allowed_packet: not a dead server (no quarantine), and
    nothing to send again (it would fail the same way)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    if code != ER_NET_PACKET_TOO_LARGE and backend.address in health.down:
        return  # hung or dead: the connection broke for that
    size = _statement_size(cur, query, args)
    if code != ER_NET_PACKET_TOO_LARGE and size <= _MIN_PACKET:
        return  # no server refuses a statement this small
    limit = await router.port.max_allowed_packet(router.backends.probe_params(backend))
    if code != ER_NET_PACKET_TOO_LARGE and (limit is None or size <= limit):
        return
    router.backends.discard(backend, siblings=False)  # it answered: no quarantine
    message = (
        f"{backend.info}: the statement ({size:,} bytes) is larger than the server's "
        f"max_allowed_packet ({f'{limit:,} bytes' if limit else 'size unknown'}): the "
        "server refused it and closed the connection; it did not run and was not sent "
        "again, and the server stays in use. Send less per statement, or raise "
        "max_allowed_packet on the servers"
    )
    if trx != NO_TRANSACTION:
        message += "; " + lost_transaction("", "", sent=False)
    raise err.OperationalError(ER_NET_PACKET_TOO_LARGE, message) from exc


def raise_if_lost(router: Router, backend: Backend, exc: err.MySQLError, refusal: str) -> None:
    if health.is_disconnect(exc):
        trx = router.core.trx_context()
        why = quarantine_note(backend)
        router.backends.lost(backend, exc)
        raise lost_error(router, backend, exc, refusal, trx, why=why) from exc


def quarantine_note(backend: Backend) -> str:
    """Why the process already quarantined *backend*'s server (hung, refused), for a message
    about a connection to it that broke; "" if it is not quarantined."""
    why = health.down.get(backend.address)
    return f"the server was quarantined ({why}); " if why else ""


def _statement_size(cur: Any, query: str, args: Any) -> int:
    """Bytes of the COM_QUERY packet a statement took (only on failure paths: it encodes)."""
    sql = query
    if cur is not None and args is not None:
        try:
            sql = cur.mogrify(query, args)
        except Exception:  # an unusable cursor: the template's size is a lower bound
            sql = query
    encoding = getattr(cur.connection if cur is not None else None, "encoding", None) or "utf8"
    return len(sql.encode(encoding, "replace")) + 1
