"""Read-your-writes across requests: the GTID of a request's last write travels to the same
client's next request, whose reads then see it (service level session, msplugin 11.).

During a request the connection runs at service level session (unless it is at strong): its
reads see the request's own writes and the GTID the client sent; the level it had before is
restored after the request (a persistent connection, CONN_MAX_AGE, serves other clients next).

Django users pin a client to the primary for a fixed time after it wrote (a cookie, 15 s in
django-multidb-router) or send everything after a write to the primary. This carries the
write's position instead: the next request reads from any replica that has it (or the master
while none has), and only as long as no replica has it.

    MIDDLEWARE = [..., "msplugin.django.middleware.ReadYourWritesMiddleware"]

Settings (all optional): MSPLUGIN_GTID_COOKIE (name, "msplugin_gtid"; None: no cookie),
MSPLUGIN_GTID_HEADER (request header read and response header set, "X-Msplugin-Gtid"; None:
no header), MSPLUGIN_GTID_MAX_AGE (cookie lifetime in seconds, 300), MSPLUGIN_GTID_DATABASES
(the aliases of DATABASES to follow, ("default",)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections

import msplugin
from msplugin.consistency import is_valid_gtid

__all__ = ["ReadYourWritesMiddleware"]


class ReadYourWritesMiddleware:
    """See the module. With more than one alias, the cookie carries one GTID per alias."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.cookie: str | None = getattr(settings, "MSPLUGIN_GTID_COOKIE", "msplugin_gtid")
        self.header: str | None = getattr(settings, "MSPLUGIN_GTID_HEADER", "X-Msplugin-Gtid")
        self.max_age: int = getattr(settings, "MSPLUGIN_GTID_MAX_AGE", 300)
        self.aliases: tuple[str, ...] = tuple(
            getattr(settings, "MSPLUGIN_GTID_DATABASES", ("default",))
        )

    def __call__(self, request: Any) -> Any:
        given = self._given(request)
        restore = {}
        before = {}
        for alias in self.aliases:
            conn = _facade(alias)
            if conn is None:
                continue
            restore[alias] = conn.service_level
            # A persistent connection (CONN_MAX_AGE) wrote for an earlier request: only a
            # write of this request goes back to this client.
            before[alias] = conn.last_gtid()
            if restore[alias][0] != "strong":  # else every read is the master's already
                conn.set_qos("session", gtid=given.get(alias))
        try:
            response = self.get_response(request)
        finally:
            wrote = {}
            for alias, (level, age) in restore.items():
                conn = connections[alias].connection
                if conn is None or not conn.open:
                    continue
                last = conn.last_gtid()
                if last is not None and last != before[alias]:
                    wrote[alias] = last
                if conn.service_level != (level, age) and not _in_transaction(alias):
                    conn.set_qos(level, age=age)
        if wrote:
            self._send(response, {**given, **wrote})
        return response

    def _given(self, request: Any) -> dict[str, str]:
        """The GTIDs the client sent, by alias; malformed ones are ignored."""
        raw = None
        if self.header is not None:
            raw = request.headers.get(self.header)
        if raw is None and self.cookie is not None:
            raw = request.COOKIES.get(self.cookie)
        if not raw:
            return {}
        out = {}
        parts = raw.split("|")
        for alias, gtid in zip(self.aliases, parts, strict=False):
            if gtid and (is_valid_gtid(gtid, "mariadb") or is_valid_gtid(gtid, "mysql")):
                out[alias] = gtid
        return out

    def _send(self, response: Any, gtids: dict[str, str]) -> None:
        value = "|".join(gtids.get(alias, "") for alias in self.aliases)
        if self.cookie is not None:
            response.set_cookie(self.cookie, value, max_age=self.max_age, samesite="Lax")
        if self.header is not None:
            response[self.header] = value


def _facade(alias: str) -> msplugin.Connection | None:
    """The msplugin connection under *alias*, connected; None if the alias is not msplugin's."""
    wrapper = connections[alias]
    if not wrapper.settings_dict["ENGINE"].startswith("msplugin.django"):
        return None
    wrapper.ensure_connection()
    conn = wrapper.connection
    return conn if isinstance(conn, msplugin.Connection) else None


def _in_transaction(alias: str) -> bool:
    return bool(connections[alias].in_atomic_block)
