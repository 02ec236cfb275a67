"""Which connected server a statement gets, decided without connecting: plans.

A plan is a generator that yields each backend it needs opened and is sent back what opening
it did: None (opened) or the OperationalError. It returns the backend to use, or raises
NoBackendAvailable naming every server it tried and why. The rules of failover (between
slaves, then to the master; quarantined servers skipped; ``failover.max_retries``,
``remember_failed``) live here once: the sync edge (Backends.drive, with PyMySQL) drives the
plans, and another edge drives the same plans with its own connect.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import TYPE_CHECKING

from pymysql import err

from msplugin import health
from msplugin._types import Role, Stat
from msplugin.errors import NoBackendAvailable

if TYPE_CHECKING:
    from msplugin.backends import Backend, Backends

__all__ = ["Plan", "master_plan", "slave_plan"]

logger = logging.getLogger("msplugin.backends")

# Yields a backend to open; is sent None (opened) or the error; returns the backend to use.
Plan = Generator["Backend", "err.OperationalError | None", "Backend"]


def master_plan(backends: Backends, only: tuple[str, ...] | None = None) -> Plan:
    """The master (of *only*, if given): the current one, else the first that answers."""
    backend = backends.master_backend
    if backend is not None and backend.conn is not None and (only is None or backend.name in only):
        return backend
    errors = []
    # Several masters (multi_master): the first that answers takes the writes and keeps
    # them, as MySQL Router's read-write mode; never load-balanced per statement.
    for candidate in backends.masters:
        if only is not None and candidate.name not in only:
            continue
        if candidate.conn is not None:
            backends.master_backend = candidate
            return candidate
        why = health.down.get(candidate.address)
        if why is not None:
            # Quarantined: the probe tells when it answers again; no connect timeout here.
            errors.append(f"{candidate.info}: quarantined ({why})")
            continue
        failure = yield candidate
        if failure is not None:
            errors.append(f"{candidate.info}: {failure.args[-1]}")
            continue
        backends.master_backend = candidate
        return candidate
    if not backends.masters:
        errors.append(f"no server takes writes now ({backends.no_master})")
    raise NoBackendAvailable(
        f"group {backends.group.name!r}: no master could be connected; nothing was executed: "
        + "; ".join(errors)
    )


def slave_plan(backends: Backends, candidates: tuple[str, ...], first: Backend) -> Plan:
    """A read's server among *candidates*, *first* (the load balancer's pick) first; failing
    over as the group's ``failover`` says, to the master last."""
    backend = first
    if backend.conn is not None:
        return backend
    if backend.role == Role.MASTER:  # the user filter may send a read to a master
        return (yield from master_plan(backends, only=(backend.name,)))
    failover = backends.group.failover
    tried: list[str] = []
    errors: list[str] = []
    while True:
        failure = yield backend
        if failure is None:
            return backend
        tried.append(backend.name)
        errors.append(f"{backend.info}: {failure.args[-1]}")
        if failover.remember_failed:
            backends.core.mark_failed(backend.name)
        if failover.strategy == "disabled":
            raise failure
        limit = failover.max_retries
        down = health.down
        left = tuple(
            n for n in candidates if n not in tried and backends.by_name[n].address not in down
        )
        if failover.strategy == "master" or not left or (limit and len(tried) >= limit):
            logger.warning(
                "group %r: cannot connect to %s (%s); failing over to the master",
                backends.group.name,
                backend.info,
                failure.args[-1],
            )
            backends.stats.counts[Stat.USE_MASTER_FAILOVER] += 1
            try:
                return (yield from master_plan(backends))
            except NoBackendAvailable as final:
                raise NoBackendAvailable(
                    f"group {backends.group.name!r}: no server could serve the read; "
                    f"replicas tried: {'; '.join(errors)}; and {final.args[-1]}"
                ) from final
        backend = backends.by_name[backends.picker.pick(left)]
        logger.warning(
            "group %r: cannot connect to %s (%s); trying %s",
            backends.group.name,
            backends.by_name[tried[-1]].info,
            failure.args[-1],
            backend.name,
        )
