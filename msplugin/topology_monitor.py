"""The process's topology monitor: one daemon thread per discovered group asks every server
whether it is read-only and where it replicates from, and publishes the roles
msplugin.topology decides (``Watch.view``), which every facade connection of the group uses.

Two queries per server per ``topology.interval``: ``SELECT @@global.read_only`` (with
``super_read_only`` on MySQL) and ``SHOW SLAVE STATUS`` (``SHOW REPLICA STATUS``). A write
that finds no master, or that the master refused as read-only, asks for checks every
``RECHECK_GAP`` seconds while it waits (``wait_for()``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pymysql
import pymysql.cursors

from msplugin import driver, galera
from msplugin.config import GroupConfig
from msplugin.monitor import monitor_params
from msplugin.topology import Observation, View, Wsrep, changes, decide

__all__ = ["Watch", "observe", "stop_all", "watch", "watches"]

logger = logging.getLogger("msplugin.topology")

# While a write waits for a master, the servers are checked at most this often.
RECHECK_GAP: Final = 0.1
# How long a second connection waits for the first check another one started.
FIRST_CHECK_WAIT: Final = 10.0

Key = tuple[str, tuple[tuple[str, str, int, str], ...], str]


@dataclass
class _Server:
    name: str
    params: dict[str, Any]  # PyMySQL connect() keywords, password included: never logged
    conn: driver.Connection | None = None
    warned: str = ""  # the last problem logged, so that a run of failures logs once


class Watch:
    """One group's servers and their current roles (see the module)."""

    def __init__(self, group: GroupConfig, params: Mapping[str, dict[str, Any]]) -> None:
        self.label = f"group {group.name!r}"
        self.names = tuple(s.name for s in group.servers)
        self.addresses = {s.name: _address(s.host, s.port) for s in group.servers}
        self.interval = group.topology.interval
        self.multi_master = group.multi_master
        self.galera = group.cluster == "galera"  # or detected: every node has wsrep_on
        self.galera_config = group.galera
        masters = tuple(s.name for s in group.masters)
        self.view = View(
            0, masters, tuple(s.name for s in group.slaves), (), "as configured", checked=False
        )
        self.seen: dict[str, Observation] = {}
        self._servers = [_Server(n, monitor_params(params[n])) for n in self.names]
        self._cond = threading.Condition()
        self._early = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # the first check is done

    def __repr__(self) -> str:
        return f"<Watch {self.label} v{self.view.version}: {self.view.describe()}>"

    def start(self) -> None:
        """Check once now (the first statement uses the servers' roles), then every
        interval in a daemon thread."""
        try:
            self.check()
        finally:
            self.ready.set()
        self._thread = threading.Thread(target=self._run, name="msplugin-topology", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for server in self._servers:
            _close(server)

    def recheck(self) -> None:
        """Check the servers now rather than at the next interval."""
        with self._cond:
            self._early = True
            self._cond.notify_all()

    def wait_for(self, ready: Callable[[View], bool], timeout: float) -> View:
        """Block until the view satisfies *ready* or *timeout* seconds passed; the servers
        are checked every RECHECK_GAP meanwhile. Returns the view either way."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready(self.view) and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._early = True
                self._cond.notify_all()
                self._cond.wait(min(left, RECHECK_GAP))
            return self.view

    def check(self, *, log: bool = True) -> View:
        """One round: ask every server, decide the roles, publish and (*log*) log them."""
        seen = {s.name: self._observe(s) for s in self._servers}
        if not self.galera and galera.detected(seen):
            self.galera = True
            logger.warning("%s: every server has wsrep_on: a Galera cluster", self.label)
            seen = {s.name: self._observe(s) for s in self._servers}
        old = self.view
        if self.galera:
            g = self.galera_config
            new = galera.decide(
                self.names,
                seen,
                old,
                writers_all=g.writers == "all",
                priority=g.priority,
                donor_reads=g.donor_reads,
            )
        else:
            new = decide(self.names, self.addresses, seen, old, multi_master=self.multi_master)
        with self._cond:
            self.seen = seen
            self.view = new
            self._cond.notify_all()
        if not log:
            return new
        for line in changes(old, new):
            logger.warning("%s: roles changed: %s", self.label, line)
        if new.conflict:
            logger.warning(
                "%s: %s writable as well as the master %s: writes stay on %s until %s "
                "read-only (%s)",
                self.label,
                ", ".join(new.conflict),
                new.master or "(none)",
                new.master or "no server",
                "it is" if len(new.conflict) == 1 else "they are",
                new.reason,
            )
        return new

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    due = last + (RECHECK_GAP if self._early else self.interval)
                    if now >= due:
                        break
                    self._cond.wait(due - now)
                if self._stopped:
                    return
                self._early = False
            last = time.monotonic()
            try:
                self.check()
            except Exception:  # the monitor thread must never die
                logger.exception("%s: topology check failed", self.label)

    def _observe(self, server: _Server) -> Observation:
        try:
            if server.conn is None or not server.conn.open:
                server.conn = driver.connect(internal=True, autocommit=True, **server.params)
            seen = observe(server.conn, galera=self.galera)
        except Exception as exc:  # a server that does not answer is an observation too
            _close(server)
            why = str(exc.args[-1]) if isinstance(exc, pymysql.err.Error) else repr(exc)
            if server.warned != why:
                server.warned = why
                logger.warning("%s: cannot check %s: %s", self.label, server.name, why)
            return Observation(reachable=False, error=why)
        server.warned = ""
        return seen


def observe(conn: driver.Connection, *, galera: bool = False) -> Observation:
    """Ask one server whether it is read-only, and where it replicates from (a Galera
    node: its wsrep state)."""
    mysql = "MariaDB" not in str(conn.get_server_info())  # type: ignore[no-untyped-call]
    if galera and not mysql:
        return _observe_galera(conn)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT @@global.read_only, @@global.super_read_only"
            if mysql
            else "SELECT @@global.read_only, @@global.wsrep_on"
        )
        flags = cur.fetchone() or (0, 0)
    read_only = _on(flags[0]) or (mysql and _on(flags[1]))
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        try:
            cur.execute("SHOW REPLICA STATUS" if mysql else "SHOW SLAVE STATUS")
            row: dict[str, Any] = cur.fetchone() or {}
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1227:  # access denied: roles from read_only alone
                raise
            row = {}
    host = row.get("Master_Host", row.get("Source_Host"))
    port = row.get("Master_Port", row.get("Source_Port"))
    io = row.get("Slave_IO_Running", row.get("Replica_IO_Running"))
    sql = row.get("Slave_SQL_Running", row.get("Replica_SQL_Running"))
    return Observation(
        reachable=True,
        read_only=read_only,
        source=_address(str(host), int(port or 3306)) if host else None,
        # Trying counts: an IO thread reconnecting to a dead master still replicates.
        replicating=io in ("Yes", "Connecting") or sql == "Yes",
        wsrep_on=not mysql and _on(flags[1]),
    )


_GALERA_STATUS: Final = (
    "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE "
    "VARIABLE_NAME IN ('WSREP_LOCAL_STATE', 'WSREP_CLUSTER_STATUS', 'WSREP_READY', "
    "'WSREP_LOCAL_INDEX')"
)


def _observe_galera(conn: driver.Connection) -> Observation:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT @@global.read_only, @@global.wsrep_on, @@global.wsrep_desync, "
            "@@global.wsrep_reject_queries"
        )
        read_only, wsrep_on, desync, reject = cur.fetchone() or (0, 0, 0, "NONE")
        cur.execute(_GALERA_STATUS)
        status = {str(k).upper(): str(v) for k, v in cur.fetchall()}
    wsrep = None
    if _on(wsrep_on):
        wsrep = Wsrep(
            state=int(status.get("WSREP_LOCAL_STATE") or 0),
            primary=status.get("WSREP_CLUSTER_STATUS") == "Primary",
            ready=_on(status.get("WSREP_READY", "OFF")),
            desync=_on(desync),
            rejecting=str(reject).upper() != "NONE",
            index=int(status.get("WSREP_LOCAL_INDEX") or 0),
        )
    return Observation(
        reachable=True, read_only=_on(read_only), wsrep=wsrep, wsrep_on=_on(wsrep_on)
    )


def _on(value: object) -> bool:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.strip().upper() not in ("0", "OFF", "")


def _address(host: str, port: int) -> tuple[str, int]:
    """How a server is named in replication settings, made comparable."""
    host = host.strip().lower()
    return ("127.0.0.1" if host == "localhost" else host, port)


def _close(server: _Server) -> None:
    conn, server.conn = server.conn, None
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


_lock = threading.Lock()
watches: dict[Key, Watch] = {}


def watch(group: GroupConfig, user: str, params: Callable[[str], dict[str, Any]]) -> Watch:
    """The process's watch of *group*'s servers (as *user*), started by the first caller;
    *params*: a server's connect keywords by name (only called for a new watch)."""
    servers = tuple((s.name, s.host, s.port, s.socket or "") for s in group.servers)
    key: Key = (group.name, servers, user)
    with _lock:
        found = watches.get(key)
        if found is None:
            new = watches[key] = Watch(group, {s.name: params(s.name) for s in group.servers})
    if found is not None:
        found.ready.wait(FIRST_CHECK_WAIT)  # its first check: the servers' roles
        return found
    try:
        new.start()
    except BaseException:
        with _lock:
            watches.pop(key, None)
        raise
    return new


def stop_all() -> None:
    """Stop every watch (tests, and close_pools())."""
    with _lock:
        found = list(watches.values())
        watches.clear()
    for w in found:
        w.stop()
