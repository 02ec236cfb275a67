"""A facade connection follows its group's discovered roles (``topology.discover``).

The process's watch (msplugin.topology_monitor) publishes a new ``View`` when roles change;
each facade connection takes it at its next statement boundary (``follow()``): the servers
get their new roles, remembered routes are forgotten, and the session on every server whose
role changed is ended, so that it is opened again as its role needs (a master tracks its
GTIDs) and, under ``session_state: "sync"``, gets the application's settings replayed. A
transaction open on the old master ends with a clear error at its next statement or commit.

Two waits, both bounded by ``topology.wait``: a write that finds no master (a switchover in
progress), and an autocommit write the master refused as read-only (error 1290: it did not
run), which runs again once on the new master.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from msplugin._types import Role, Stat
from msplugin.errors import NoBackendAvailable
from msplugin.topology import View

if TYPE_CHECKING:
    from msplugin.router import Router

__all__ = ["after_read_only", "follow", "take", "wait_for_master"]

logger = logging.getLogger("msplugin.topology")


def follow(router: Router) -> None:
    """Take the watch's roles if they changed since this connection last took them."""
    watch = router.topology
    assert watch is not None
    view = watch.view
    if view is not router.view:
        if watch.galera:  # configured, or found by discovery: Galera's rules apply
            router.core.cluster = "galera"
        take(router, view)


def take(router: Router, view: View) -> None:
    """Give the servers *view*'s roles and end the sessions of those whose role changed."""
    old = router.view
    router.view = view
    backends, core = router.backends, router.core
    backends.no_master = view.reason if not view.masters else ""
    if old is not None and old.same_roles(view):
        return
    changed = backends.take_roles(view.masters, view.slaves)
    core.set_roles(view.masters, view.slaves)
    router.roles_changed()
    if old is not None:  # (the first roles, at connect, are not a change)
        router.stats.counts[Stat.ROLE_CHANGES] += 1
    reports = []
    for b in changed:
        if b.conn is None:
            continue
        b.gone = (
            f"{b.name} is no longer the master ({view.reason})"
            if b.role != Role.MASTER
            else f"{b.name} became the master ({view.reason})"
        )
        logger.info("%s: ending the session on %s: %s", router.group.name, b.name, b.gone)
        tracker = core.tracker
        gone = tracker.unrecoverable(b.name) if tracker is not None else []
        if gone:
            reports.append(f"{', '.join(gone)} ended with the session on {b.name}: {b.gone}")
        backends.close_for_role(b)
    # Last: warnings may be errors (warnings.simplefilter), and the roles are taken by now.
    for report in reports:
        router.warn_state("(a role change)", report)


async def wait_for_master(router: Router, refused: str | None = None) -> View:
    """Wait, at most ``topology.wait`` seconds, until a server other than *refused* takes
    writes; take the roles either way and return them."""
    watch = router.topology
    assert watch is not None
    wait = router.group.topology.wait

    def ready(view: View) -> bool:
        return bool(view.masters) and refused not in view.masters

    await router.port.blocking(lambda: watch.wait_for(ready, wait))
    follow(router)
    return watch.view


async def after_read_only(router: Router, refused: str) -> None:
    """The master *refused* an autocommit write as read-only: wait for another master, or
    raise NoBackendAvailable (the write did not run)."""
    view = await wait_for_master(router, refused)
    if view.masters and refused not in view.masters:
        return
    raise NoBackendAvailable(
        f"group {router.group.name!r}: {refused} refused the write as read-only and no other "
        f"server took writes within {router.group.topology.wait:g} s ({view.reason}); the "
        "statement did not run"
    )
