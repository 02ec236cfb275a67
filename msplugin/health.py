"""Process-wide server health: quarantine, probes that bring servers back, and health checks.

Every facade connection of the process shares one registry, keyed by the server's address
(host, port, socket), so one connection's failure spares the others a timeout.

- **Quarantine.** A server that refuses connections, breaks one, or fails a health check is
  quarantined: statements avoid it, and every connection of the process to it is interrupted
  (``driver.interrupt``), so nothing stays blocked on a dead or hung server.
- **Probes.** A daemon thread connects to a quarantined server at once and then every
  ``quarantine.interval`` seconds; the first connect that works puts it back.
- **Health checks.** While the process holds connections to a server, a daemon thread pings it
  every ``quarantine.check_interval`` seconds on a connection of its own, with a
  ``check_timeout``. A server that does not answer in time is hung: quarantined. A long query
  on a healthy server is never interrupted: the server answers the ping while it runs.

The statement path reads ``down`` (a dict, empty while every server is healthy): a truth test
when nothing is quarantined.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pymysql

from msplugin import driver
from msplugin.config import QuarantineConfig
from msplugin.pool import discard_idle

__all__ = [
    "ServerKey",
    "down",
    "is_disconnect",
    "quarantined",
    "record_failure",
    "record_success",
    "reset",
    "watch",
]

logger = logging.getLogger("msplugin.health")

ServerKey = driver.Address

# Client-side error codes: the server could not be reached or the connection broke. A server
# error (access denied, too many connections) means the server answers: no quarantine.
CR_CONNECTION_ERROR: Final = 2002
CR_CONN_HOST_ERROR: Final = 2003
CR_SERVER_GONE_ERROR: Final = 2006
CR_SERVER_LOST: Final = 2013
CR_SERVER_LOST_EXTENDED: Final = 2055
DISCONNECT_CODES: Final = frozenset(
    {
        CR_CONNECTION_ERROR,
        CR_CONN_HOST_ERROR,
        CR_SERVER_GONE_ERROR,
        CR_SERVER_LOST,
        CR_SERVER_LOST_EXTENDED,
    }
)
# A health check stops once the process has held no connection to its server this long.
CHECK_IDLE_STOP: Final = 60.0


def is_disconnect(exc: BaseException) -> bool:
    """True if *exc* says the connection to the server is gone (or was never made)."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # PyMySQL: the socket was already closed ("(0, '')")
    return (
        isinstance(exc, pymysql.err.OperationalError)
        and bool(exc.args)
        and exc.args[0] in DISCONNECT_CODES
    )


def timed_out(exc: BaseException) -> bool:
    """True if *exc*, or what caused it, is a socket timeout."""
    seen: BaseException | None = exc
    for _ in range(4):  # PyMySQL and driver wrap the socket's error once or twice
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class _Server:
    label: str  # "alias (role, host:port)": what the logs name
    failures: int = 0
    quarantined_at: float | None = None
    # When a probe last found it answering after a quarantine: a connection opened before
    # that broke with the outage already counted, so finding it broken is no new failure.
    recovered_at: float = 0.0
    reason: str = ""
    probe: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Check:
    label: str
    params: dict[str, Any]  # PyMySQL connect() keywords, password included: never logged
    config: QuarantineConfig
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


_lock = threading.Lock()
_servers: dict[ServerKey, _Server] = {}
_checks: dict[ServerKey, _Check] = {}
# Quarantined servers and why: read without the lock on the statement path (a dict lookup is
# atomic under the GIL; writers hold _lock).
down: dict[ServerKey, str] = {}


def record_failure(
    key: ServerKey,
    label: str,
    reason: str,
    config: QuarantineConfig,
    probe_params: Mapping[str, Any],
    opened_at: float | None = None,
) -> bool:
    """Count a connect failure, a broken connection or a failed check; True if *key* is (now)
    quarantined.

    *opened_at*: when the broken connection was opened (monotonic), None for a failure of
    the server itself (a connect, a health check). A connection older than the server's last
    return from quarantine broke in that outage, which already counted. One broken connection
    says little of the server (a KILL, an idle timeout, a restart that is over): the process's
    other connections to it are interrupted only once the server itself failed, at once for a
    failed connect or check, else when the first probe cannot connect either.
    *probe_params* (PyMySQL connect() keywords, password included, never logged) are what the
    background probe connects with.
    """
    with _lock:
        server = _servers.get(key)
        if server is None:
            server = _servers[key] = _Server(label)
        if key in down:
            return True
        if opened_at is not None and opened_at < server.recovered_at:
            return False
        server.failures += 1
        if server.failures < config.failure_threshold:
            return False
        server.quarantined_at = time.monotonic()
        server.reason = reason
        down[key] = reason
        server.stop = threading.Event()
        params = dict(probe_params)
        timeout = float(params.get("connect_timeout", 10))
        params["connect_timeout"] = max(0.1, min(timeout, config.interval))
        confirmed = opened_at is None
        server.probe = threading.Thread(
            target=_probe,
            args=(key, server, params, config.interval, confirmed),
            name=f"msplugin-probe-{key[0]}:{key[1]}",
            daemon=True,
        )
        server.probe.start()
    interrupted = _end_sessions(key) if confirmed else 0
    logger.warning(
        "server %s quarantined after %d failure(s): %s; probing every %g s%s",
        label,
        server.failures,
        reason,
        config.interval,
        f"; {interrupted} connection(s) to it interrupted" if interrupted else "",
    )
    return True


def _end_sessions(key: ServerKey) -> int:
    """The server failed: every session with it ends now. A statement blocked on it fails
    instead of waiting for it, and an idle connection fails before its next statement is
    sent (so that statement may run elsewhere). Returns how many were interrupted."""
    interrupted = driver.interrupt(key)
    discard_idle(*key)
    return interrupted


def record_success(key: ServerKey) -> None:
    """A connect to *key* worked: forget its failures (called off the statement path)."""
    server = _servers.get(key)
    if server is not None and server.failures and key not in down:
        with _lock:
            server.failures = 0


def _probe(
    key: ServerKey, server: _Server, params: dict[str, Any], interval: float, confirmed: bool
) -> None:
    # The first probe runs at once: one broken connection (a KILL, an idle timeout) must not
    # keep a healthy server out of rotation for a whole interval.
    stop = server.stop
    first = True
    while first or not stop.wait(interval):
        try:
            driver.connect(internal=True, **params).close()
        except pymysql.err.OperationalError as exc:
            if is_disconnect(exc):
                logger.debug("probe of %s: still down (%s)", server.label, exc.args[-1])
                if first and not confirmed:
                    n = _end_sessions(key)
                    logger.debug("%s is down: %d connection(s) interrupted", server.label, n)
                first = False
                continue
            # A server error (access denied, too many connections): the server answers.
        except Exception as exc:  # a probe thread must never die silently
            logger.debug("probe of %s failed: %r", server.label, exc)
            first = False
            continue
        # Said before the server rejoins the rotation: whoever sees it back (a statement, a
        # monitor reading `down`) finds the line already logged.
        logger.warning(
            "server %s is back after %.1f s in quarantine (was: %s)",
            server.label,
            time.monotonic() - (server.quarantined_at or time.monotonic()),
            server.reason,
        )
        with _lock:
            if stop.is_set():
                return
            down.pop(key, None)
            server.failures = 0
            server.quarantined_at = None
            server.recovered_at = time.monotonic()
            server.probe = None
        return


def watch(key: ServerKey, label: str, params: Mapping[str, Any], config: QuarantineConfig) -> None:
    """Health-check *key* while the process holds connections to it (see the module doc).

    Called when a backend connects; costs a dict lookup once the check runs.
    """
    if not config.check_interval or key in _checks:
        return
    with _lock:
        if key in _checks:
            return
        probe = dict(params)
        probe.pop("autocommit", None)
        timeout = config.check_timeout
        probe.update(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout)
        check = _Check(label, probe, config)
        check.thread = threading.Thread(
            target=_check_loop,
            args=(key, check),
            name=f"msplugin-check-{key[0]}:{key[1]}",
            daemon=True,
        )
        _checks[key] = check
        check.thread.start()


def _check_loop(key: ServerKey, check: _Check) -> None:
    conn: driver.Connection | None = None
    idle_since: float | None = None
    try:
        while not check.stop.wait(check.config.check_interval):
            if key in down:
                _close(conn)  # the probe watches it now
                conn = None
                continue
            if not driver.application_connections(key):
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > CHECK_IDLE_STOP:
                    return
                continue
            idle_since = None
            conn = _check_once(key, check, conn)
    finally:
        _close(conn)
        with _lock:
            if _checks.get(key) is check:
                del _checks[key]


def _check_once(
    key: ServerKey, check: _Check, conn: driver.Connection | None
) -> driver.Connection | None:
    """Ping the server on the check's own connection; quarantine it if it does not answer.

    A check connection the server closed (KILL, a restart) is opened again at once: only a
    server that cannot be reached, or does not answer in time, is quarantined.
    """
    fresh = conn is None or not conn.open
    try:
        if conn is None or not conn.open:
            conn = driver.connect(internal=True, **check.params)
        conn.ping(reconnect=False)
        return conn
    except pymysql.err.OperationalError as exc:
        _close(conn)
        if not is_disconnect(exc):
            return None  # a server error: the server answers
        if timed_out(exc):
            reason = f"hung: no answer to a health check within {check.config.check_timeout:g} s"
        elif not fresh:
            return _check_once(key, check, None)  # the session ended, not the server
        else:
            reason = f"health check failed: {exc.args[-1]}"
    except Exception as exc:  # a check thread must never die silently
        logger.debug("health check of %s failed: %r", check.label, exc)
        _close(conn)
        return None
    record_failure(key, check.label, reason, check.config, check.params)
    return None


def _close(conn: driver.Connection | None) -> None:
    if conn is not None and conn.open:
        with contextlib.suppress(pymysql.err.Error):
            conn.close()


def quarantined_since(key: ServerKey) -> float:
    """When *key* was quarantined (monotonic); KeyError if it is not."""
    server = _servers[key]
    if key not in down or server.quarantined_at is None:
        raise KeyError(key)
    return server.quarantined_at


def quarantined() -> dict[str, str]:
    """The quarantined servers of this process, by label, with the reason."""
    with _lock:
        return {_servers[k].label: reason for k, reason in down.items()}


def reset() -> None:
    """Forget every failure, stop every probe and health check (tests, and close_pools())."""
    with _lock:
        for server in _servers.values():
            server.stop.set()
        for check in _checks.values():
            check.stop.set()
        threads = [s.probe for s in _servers.values() if s.probe is not None]
        threads += [c.thread for c in _checks.values() if c.thread is not None]
        _servers.clear()
        _checks.clear()
        down.clear()
    for t in threads:
        with contextlib.suppress(RuntimeError):
            t.join(timeout=0.1)
