"""Django support: the database backend ``ENGINE: "msplugin.django"`` and read-your-writes
across requests and tasks.

- msplugin.django.base: Django's MySQL backend over msplugin.connect(); ``HOST`` names the
  group, ``OPTIONS["config"]`` the configuration file.
- msplugin.django.middleware.ReadYourWritesMiddleware: a request after one that wrote sees
  that write, through a cookie (or a header) carrying its GTID.
- read_your_writes() and last_gtid() below: the same for code outside a request (a Celery
  task given the GTID of the request that queued it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["facade", "last_gtid", "read_your_writes"]


def facade(using: str = "default") -> Any:
    """The msplugin connection under Django's connection *using* (connected if need be)."""
    from django.db import connections

    import msplugin

    wrapper = connections[using]
    wrapper.ensure_connection()
    conn = wrapper.connection
    if not isinstance(conn, msplugin.Connection):
        raise TypeError(
            f"DATABASES[{using!r}] does not use ENGINE 'msplugin.django' "
            f"(its connection is a {type(conn).__name__})"
        )
    return conn


def last_gtid(using: str = "default") -> str | None:
    """The GTID of the last write of Django's connection *using* (None: none known), to hand
    to a task that must see it."""
    return facade(using).last_gtid()  # type: ignore[no-any-return]


@contextmanager
def read_your_writes(gtid: str | None, using: str = "default") -> Iterator[None]:
    """Inside the block, reads of Django's connection *using* see *gtid* (a write's GTID
    from last_gtid(), e.g. passed to a task): service level session with that GTID. The
    service level before the block is restored after it. None: the block runs as it is."""
    if not gtid:
        yield
        return
    conn = facade(using)
    level, age = conn.service_level
    conn.set_qos("session", gtid=gtid)
    try:
        yield
    finally:
        conn.set_qos(level, age=age)
