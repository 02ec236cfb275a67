"""The servers of one facade connection: each a lazily opened connection (``Backend``), and
the set of them (``Backends``): opened when a statement needs one, failing over between
slaves and then to the master, set up for session tracking, and dropped when they break."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql
from pymysql import err
from pymysql.constants import CLIENT, SERVER_STATUS

from msplugin import driver, health
from msplugin._types import Level, Role, Stat
from msplugin.acquire import Plan, master_plan, slave_plan
from msplugin.config import GroupConfig, ServerConfig
from msplugin.consistency import SESSION_STATE_CHANGED, gtid_tracking
from msplugin.errors import NoBackendAvailable, PoolTimeout
from msplugin.filters import UserCallback, make_picker
from msplugin.health import down as _down
from msplugin.monitor import monitor, monitor_params
from msplugin.monitor import not_replicating as _not_replicating
from msplugin.pool import discard_idle
from msplugin.routing import Decision, split_replicating
from msplugin.stats import Stats

if TYPE_CHECKING:
    from msplugin.core import ConnectionCore
    from msplugin.port import Port

__all__ = ["Backend", "Backends", "ServerInfo", "consumed", "detail", "isolation_sql"]


logger = logging.getLogger("msplugin.backends")

_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS

Address = driver.Address


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Which server ran a statement: what ``Connection.last_used`` returns."""

    role: str
    name: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.name} ({self.role}, {self.host}:{self.port})"


class Backend:
    """A server and, once used, the one PyMySQL connection the facade holds to it."""

    __slots__ = (
        "address",
        "conn",
        "dirty",
        "flavor",
        "gone",
        "info",
        "multi_statements",
        "name",
        "pool",
        "port",
        "role",
        "server",
    )

    def __init__(self, server: ServerConfig, port: Port) -> None:
        self.server = server
        self.port = port  # the edge's I/O: closing the connection is the edge's
        self.name = server.name
        self.role = server.role
        self.info = ServerInfo(server.role, server.name, server.host, server.port)
        # The quarantine's key: the server, whoever connects to it.
        self.address: Address = (server.host, server.port, server.socket or "")
        self.pool: Any = None  # the pool the connection was borrowed from
        self.conn: driver.Connection | None = None
        # Ran a statement since the last commit/rollback (matters with autocommit off).
        self.dirty = False
        self.flavor = "mariadb"  # or "mysql": decides the GTID functions; known once connected
        self.multi_statements = False  # opened with CLIENT.MULTI_STATEMENTS by msplugin
        self.gone = ""  # why msplugin closed the session (a role change), for the error

    def __repr__(self) -> str:
        state = "open" if self.conn is not None else "not connected"
        return f"<Backend {self.name} {self.role} {self.info.host}:{self.info.port} {state}>"

    def params(self, defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        """PyMySQL connect() keywords: *defaults*, then this server's keys, then *overrides*.

        *defaults* are connect()'s arguments; *overrides* is the API-level state (autocommit,
        select_db, character set) that wins over per-server keys.
        """
        s = self.server
        params: dict[str, Any] = dict(defaults)
        params["host"] = s.host
        # Always given, so that nothing (an option file's [client] port) can point it elsewhere.
        params["port"] = s.port
        if s.socket is not None:
            params["unix_socket"] = s.socket
        for key, value in (("user", s.user), ("password", s.password), ("database", s.db)):
            if value is not None:
                params[key] = value
        if s.connect_timeout is not None:
            params["connect_timeout"] = s.connect_timeout
        params.update(s.options)
        params.update(overrides)
        return params

    def attach(self, conn: Any, pool: Any, flags: int) -> None:
        """*conn* (opened with client capability *flags*, or borrowed from *pool*) is now
        this backend's connection."""
        self.conn = conn
        self.pool = pool
        driver.held(self.address, +1)
        version = str(conn.get_server_info())
        self.flavor = "mariadb" if "MariaDB" in version else "mysql"
        self.multi_statements = bool(flags & CLIENT.MULTI_STATEMENTS)
        self.gone = ""
        logger.debug("connected to %s%s", self.info, " (pooled)" if pool else "")

    @property
    def opened_at(self) -> float:
        """When the server connection was opened (monotonic; 0 when not connected)."""
        conn = self.conn
        return getattr(conn, "opened_at", 0.0) if conn is not None else 0.0

    @property
    def status(self) -> int:
        """The server status flags of the last reply (0 when not connected)."""
        conn = self.conn
        # server_status is set by PyMySQL from every OK/EOF packet; the stubs omit it.
        return conn.server_status if conn is not None else 0

    @property
    def in_transaction(self) -> bool:
        """The server said a transaction is open (status flag of the last reply)."""
        return bool(self.status & _IN_TRANS)

    def close(self, *, broken: bool = False) -> None:
        """Close the connection, or give it back to its pool (which resets it or, if
        *broken*, discards it)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        driver.held(self.address, -1)
        pool, self.pool = self.pool, None
        try:
            self.port.release(conn, pool, broken=broken)
        except pymysql.err.Error:
            # The socket is gone either way; a failed COM_QUIT must not hide other work.
            logger.debug("error while closing %s", self.info, exc_info=True)


class Backends:
    """The servers of one facade connection and its connections to them (see the module)."""

    def __init__(
        self,
        group: GroupConfig,
        core: ConnectionCore,
        stats: Stats,
        *,
        defaults: dict[str, Any],
        overrides: dict[str, Any],
        pick_server: UserCallback | None,
        port: Port,
    ) -> None:
        self.group = group
        self.core = core
        self.stats = stats
        self.defaults = defaults  # connect()'s keywords
        self.overrides = overrides  # API-level state that wins over per-server keys
        self.isolation: str | None = None  # set_isolation_level(): applied to every backend
        self.init_sql: list[str] = []  # init_sessions(): run on every backend after connecting
        self.port = port
        self.masters = [Backend(s, port) for s in group.masters]
        self.slaves = [Backend(s, port) for s in group.slaves]
        self.by_name = {b.name: b for b in self.masters + self.slaves}
        self.slave_names = tuple(b.name for b in self.slaves)
        self.master_backend: Backend | None = None  # the master that takes the writes
        self.pick_server = pick_server
        self.picker = self.new_picker()
        # topology.discover: why no server takes writes now, for the error; and the flow
        # that waits for one (msplugin.follow) before the master is looked for.
        self.no_master = ""
        self.writer_offset = random.randrange(1 << 16)  # galera.writers "all": see take_roles
        self.awaiting: Callable[[], Awaitable[object]] | None = None
        self.master_failed: Callable[[], None] | None = None

    def master_name(self) -> str:
        """The master's name ("" when no server takes writes: topology.discover)."""
        backend = self.master_backend or (self.masters[0] if self.masters else None)
        return backend.name if backend is not None else ""

    def new_picker(self) -> Any:
        return make_picker(
            self.group.filters,
            {b.name: b.address for b in self.by_name.values()},
            [b.name for b in self.masters],
            f"group {self.group.name!r}",
            self.pick_server,
        )

    def take_roles(self, masters: tuple[str, ...], slaves: tuple[str, ...]) -> list[Backend]:
        """The servers' roles are now *masters* and *slaves* (topology.discover): returns
        the backends whose role changed (the caller ends their sessions)."""
        changed = []
        for b in self.by_name.values():
            role = Role.MASTER if b.name in masters else Role.SLAVE
            if b.role != role:
                b.role = role
                b.info = ServerInfo(role, b.name, b.info.host, b.info.port)
                changed.append(b)
        if len(masters) > 1 and self.core.cluster == "galera":
            # writers: all: each facade connection starts with another node, so that the
            # process's writes spread (each connection's stay on one node).
            start = self.writer_offset % len(masters)
            masters = masters[start:] + masters[:start]
        self.masters = [self.by_name[n] for n in masters]
        self.slaves = [self.by_name[n] for n in slaves]
        self.slave_names = slaves
        if self.master_backend is not None and self.master_backend.name not in masters:
            self.master_backend = None
        self.picker = self.new_picker()
        return changed

    async def master(self, *, lazy: bool = True, only: tuple[str, ...] | None = None) -> Backend:
        """The master (of *only*), connected: msplugin.acquire.master_plan, driven here."""
        backend = self.master_backend
        if (
            backend is not None
            and backend.conn is not None
            and (only is None or backend.name in only)
        ):
            return backend
        if not self.masters and self.awaiting is not None:
            await self.awaiting()  # a switchover in progress: wait for the new master
        try:
            return await self.drive(master_plan(self, only), lazy=lazy)
        except NoBackendAvailable:
            if self.master_failed is not None:
                self.master_failed()  # topology.discover: has another server taken over?
            raise

    async def slave(self, candidates: tuple[str, ...], picked: Backend | None = None) -> Backend:
        """A read's server among *candidates*, connected (*picked*: the load balancer's pick
        already made): msplugin.acquire.slave_plan, driven here."""
        backend = picked or self.by_name[self.picker.pick(candidates)]
        if backend.conn is not None:
            return backend
        return await self.drive(slave_plan(self, candidates, backend), lazy=True)

    async def drive(self, plan: Plan, *, lazy: bool) -> Backend:
        """Run *plan* (msplugin.acquire): open each backend it asks for, tell it how that
        went. A pool out of connections ends it: the server is fine, the process is busy."""
        try:
            backend = next(plan)
            while True:
                try:
                    await self.open(backend, lazy=lazy)
                except PoolTimeout:
                    plan.close()
                    raise
                except err.OperationalError as exc:
                    backend = plan.send(exc)
                else:
                    backend = plan.send(None)
        except StopIteration as done:
            result: Backend = done.value
            return result

    async def open(self, backend: Backend, *, lazy: bool, retry_stale: bool = False) -> None:
        kind = "lazy" if lazy else "non_lazy"
        flags = self.flags(backend)
        params = backend.params(self.defaults, self.overrides)
        params["client_flag"] = params.get("client_flag", 0) | flags
        try:
            conn, pool = await self.port.connect(
                params, self.group.pooling, str(backend.info), lambda: self.spare(backend)
            )
        except err.OperationalError as exc:
            self.stats.counts[f"{kind}_connections_{backend.role}_failure"] += 1
            if health.is_disconnect(exc):
                self.report_failure(backend, f"cannot connect: {exc.args[-1]}", None)
            raise
        backend.attach(conn, pool, flags)
        core = self.core
        core.flavors[backend.name] = backend.flavor
        if backend.role == Role.MASTER:
            core.sql_autocommit_off = False  # a new session: autocommit as connect() set it
        track_gtids = backend.role == Role.MASTER and core.track_gtids
        if track_gtids or core.tracker is not None:
            try:
                await self.setup_tracking(
                    backend, gtids=track_gtids, state=core.tracker is not None
                )
            except err.MySQLError as exc:
                # A pooled connection that broke while idle (the server restarted): nothing
                # of the application's was sent; try once more with a new connection.
                pooled = backend.pool is not None
                self.stats.counts[f"{kind}_connections_{backend.role}_failure"] += 1
                if not pooled or retry_stale or not health.is_disconnect(exc):
                    self.lost(backend, exc)
                    raise
                self.discard(backend)
                await self.open(backend, lazy=lazy, retry_stale=True)
                return
        for sql in self.setup_sql():
            await self.run_setup(backend, sql)
        health.record_success(backend.address)
        health.watch(
            backend.address,
            str(backend.info),
            self.probe_params(backend),
            self.group.quarantine,
        )
        self.stats.counts[f"{kind}_connections_{backend.role}_success"] += 1

    def flags(self, backend: Backend) -> int:
        """The client capabilities msplugin adds when it opens *backend*."""
        # Session tracking costs nothing until a tracked item changes; it tells msplugin the
        # master's GTIDs and, with session_state, changes no statement text shows.
        flags = CLIENT.SESSION_TRACK
        core = self.core
        if backend.role == Role.SLAVE and (
            core.session_configured or core.policy.qos == Level.SESSION
        ):
            # Lets a session-consistent read carry its GTID check in the same packet: in a
            # group configured for session consistency, or opened after set_qos("session").
            flags |= CLIENT.MULTI_STATEMENTS
        return flags

    def setup_sql(self) -> list[str]:
        """The statements every new session runs: set_isolation_level(), init_sessions()."""
        if self.isolation is None:
            return self.init_sql
        return [isolation_sql(self.isolation), *self.init_sql]

    async def run_setup(self, backend: Backend, sql: str) -> None:
        """Run the session set-up statement *sql* on *backend*'s new session."""
        try:
            await self.port.query(backend.conn, sql)
        except err.MySQLError as exc:
            if health.is_disconnect(exc):
                self.lost(backend, exc)
            raise

    async def setup_tracking(self, backend: Backend, *, gtids: bool, state: bool) -> None:
        """One statement at connect: report GTIDs (master), and session state changes."""
        assert backend.conn is not None
        parts = []
        if gtids:
            parts.append(gtid_tracking(backend.flavor))
        if state:
            parts.append("session_track_state_change = ON, session_track_schema = ON")
        try:
            await self.port.query(backend.conn, "SET SESSION " + ", ".join(parts))
            consumed(backend)
        except err.MySQLError as exc:
            if health.is_disconnect(exc):
                raise
            if gtids:
                # Without tracking every write is "untracked": session reads go to the master.
                logger.warning(
                    "cannot track GTIDs on %s (%s): session reads go to the master",
                    backend.info,
                    exc,
                )
                self.core.track_gtids = False
            if state:
                logger.warning(
                    "cannot track session state changes on %s (%s): session_state sees "
                    "statement text only",
                    backend.info,
                    exc,
                )

    async def connect_all(self) -> None:
        """lazy_connections false: connect the master and every slave now (a slave that
        cannot be connected is logged and left for later; no master raises)."""
        await self.master(lazy=False)
        for backend in self.slaves:
            if backend.address in health.down:
                continue  # quarantined: connected lazily once a probe brings it back
            try:
                await self.open(backend, lazy=False)
            except err.OperationalError as exc:
                logger.warning(
                    "group %r: cannot connect to %s (%s)",
                    self.group.name,
                    backend.info,
                    exc.args[-1],
                )

    def opened(self) -> list[Backend]:
        return [b for b in self.by_name.values() if b.conn is not None]

    def probe_params(self, backend: Backend) -> dict[str, Any]:
        """Connect keywords for msplugin's own connections to *backend*'s server."""
        params = backend.params(self.defaults, {})
        params.pop("autocommit", None)
        # The application's session settings are not a probe's; no database either, so that
        # a dropped database cannot fail a probe, and the servers can tell these connections
        # (PROCESSLIST db NULL) from the application's.
        params.pop("init_command", None)
        params.pop("database", None)
        return params

    def report_failure(self, backend: Backend, reason: str, opened_at: float | None) -> None:
        health.record_failure(
            backend.address,
            str(backend.info),
            reason,
            self.group.quarantine,
            self.probe_params(backend),
            opened_at,
        )

    def spare(self, opening: Backend) -> None:
        """A pool is exhausted and this connection must wait: first give back the backend
        connections it can spare (no transaction, no session state), so that two facade
        connections never wait forever for what the other holds. Needs session_state warn
        or sync: with "off" nothing is known to be spare."""
        tracker = self.core.tracker
        if tracker is None:
            return
        pinned = self.by_name.get(self.core.pinned or "")
        for b in self.opened():
            if (
                b is opening
                or b is pinned
                or b.dirty
                or b.in_transaction
                or b.pool is None
                or tracker.holds_state(b.name)
            ):
                continue
            logger.debug("pool exhausted: returning the idle connection to %s", b.info)
            b.close()

    def lost(self, backend: Backend, exc: BaseException) -> None:
        """*backend*'s connection broke: close it, tell the quarantine, forget its session.

        The quarantine counts it only if the connection is younger than the server's last
        return from quarantine: an older one broke in that outage, already counted.
        """
        opened_at = backend.opened_at
        self.discard(backend)
        self.stats.counts[Stat.CONNECTIONS_LOST] += 1
        self.report_failure(backend, f"connection lost: {detail(exc)}", opened_at)

    def discard(self, backend: Backend, *, siblings: bool = True) -> None:
        """Close *backend*'s broken connection and forget its session. With *siblings*, the
        idle pooled connections to its server go too: a server that dropped this connection
        most likely dropped them (not so when it answered and ended one session only)."""
        backend.close(broken=True)
        if siblings:
            discard_idle(*backend.address)
        self.core.lost(backend.name)

    def close_for_role(self, backend: Backend) -> None:
        """End *backend*'s session because its role changed: a pooled one goes back to be
        reset (an open transaction rolls back), and what it held is forgotten."""
        backend.close()
        self.core.lost(backend.name)

    def monitor_key(self, backend: Backend) -> tuple[str, int, str, str]:
        s = backend.server
        return (
            s.host,
            s.port,
            s.socket or "",
            str(s.user or self.defaults.get("user", "")),
        )

    def watch_replicas(self, *, wait: bool) -> None:
        """Have the process's replica monitor watch this group's slaves (for ``age``, and to
        keep reads off replicas that stopped replicating); *wait* for the first statuses.
        With topology.discover every server is watched: any of them may become a slave."""
        for b in self.by_name.values() if self.group.topology.discover else self.slaves:
            params = monitor_params(self.probe_params(b))
            monitor.watch(
                self.monitor_key(b), params, self.group.replica_status_interval, wait=wait
            )

    def healthy(self) -> tuple[str, ...]:
        """The slaves neither failed on this connection nor quarantined in the process."""
        failed = self.core.failed
        down = health.down
        if not failed and not down:
            return self.slave_names
        by_name = self.by_name
        return tuple(
            n for n in self.slave_names if n not in failed and by_name[n].address not in down
        )

    def avoiding(self) -> bool:
        """True if reads may have to avoid a server of this group: one is quarantined, or
        not replicating (a remembered route's pick could then differ from the full path's)."""
        down, stopped = _down, _not_replicating
        return any(b.address in down or b.address in stopped for b in self.slaves)

    def eligible(
        self, d: Decision, allowed: tuple[str, ...] | None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(replicas that may serve a read, replicas left out only because they stopped
        replicating longer than replica_stopped_limit); *allowed*: what filters left."""
        candidates = self.healthy()
        if allowed is not None:
            candidates = tuple(n for n in candidates if n in allowed)
        age = self.core.policy.age
        if age is not None and d.consistency == Level.EVENTUAL:
            candidates = tuple(
                n
                for n in candidates
                if (st := monitor.status(self.monitor_key(self.by_name[n]))) and st.within(age)
            )
        if not _not_replicating:
            return candidates, ()
        by_name = self.by_name
        since = {
            n: t for n in candidates if (t := _not_replicating.get(by_name[n].address)) is not None
        }
        return split_replicating(
            candidates, since, time.monotonic(), self.group.replica_stopped_limit
        )

    def unavailable(self) -> str:
        """Why each slave cannot serve a read now: what an error names when none can."""
        now = time.monotonic()
        parts = []
        for name in self.slave_names:
            b = self.by_name[name]
            if (why := health.down.get(b.address)) is not None:
                parts.append(f"{b.info}: quarantined ({why})")
            elif name in self.core.failed:
                parts.append(f"{b.info}: failed on this connection")
            elif (since := _not_replicating.get(b.address)) is not None:
                parts.append(f"{b.info}: not replicating for {now - since:.0f} s")
            elif (age := self.core.policy.age) is not None:
                parts.append(f"{b.info}: not within age {age} s")
        return "; ".join(parts) or "no slave configured"


def detail(exc: BaseException) -> str:
    """What a driver error says, for a message (PyMySQL's closed-socket error says nothing)."""
    text = str(exc.args[-1]) if exc.args else ""
    return text or "the connection was already closed"


def isolation_sql(level: str) -> str:
    """The statement setting a session's isolation *level*."""
    return f"SET SESSION TRANSACTION ISOLATION LEVEL {level}"


def consumed(backend: Backend) -> None:
    """The reply's session-state block has been read: clear its flag. PyMySQL updates the
    status only from OK packets, so a result set would otherwise show the flag of an older
    reply, and every later statement would take the slow path looking for a block."""
    if backend.conn is not None:
        backend.conn.server_status &= ~SESSION_STATE_CHANGED
