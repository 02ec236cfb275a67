"""Process-wide quarantine of servers that refuse connections or die, with background probes.

Every facade connection of the process shares one registry, keyed by the server's address
(host, port, socket), so one connection's failure spares the others a connect timeout. A
quarantined server is probed by a daemon thread every ``quarantine.interval`` seconds and put
back when a probe connects. The statement path reads ``down`` (a dict, empty while every server
is healthy): a truth test when nothing is quarantined.
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

from msplugin.config import QuarantineConfig

__all__ = ["ServerKey", "down", "is_disconnect", "record_failure", "record_success", "reset"]

logger = logging.getLogger("msplugin.health")

ServerKey = tuple[str, int, str]  # host, port, socket

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


def is_disconnect(exc: BaseException) -> bool:
    """True if *exc* says the connection to the server is gone (or was never made)."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # PyMySQL: the socket was already closed ("(0, '')")
    return (
        isinstance(exc, pymysql.err.OperationalError)
        and bool(exc.args)
        and exc.args[0] in DISCONNECT_CODES
    )


@dataclass
class _Server:
    label: str  # "alias (host:port)": what the logs name
    failures: int = 0
    quarantined_at: float | None = None
    reason: str = ""
    probe: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_servers: dict[ServerKey, _Server] = {}
# Quarantined servers and why: read without the lock on the statement path (a dict lookup is
# atomic under the GIL; writers hold _lock).
down: dict[ServerKey, str] = {}


def record_failure(
    key: ServerKey,
    label: str,
    reason: str,
    config: QuarantineConfig,
    probe_params: Mapping[str, Any],
) -> bool:
    """Count a connect failure or a broken connection; True if *key* is (now) quarantined.

    *probe_params* (PyMySQL connect() keywords, password included, never logged) are what the
    background probe connects with.
    """
    with _lock:
        server = _servers.get(key)
        if server is None:
            server = _servers[key] = _Server(label)
        server.failures += 1
        if key in down:
            return True
        if server.failures < config.failure_threshold:
            return False
        server.quarantined_at = time.monotonic()
        server.reason = reason
        down[key] = reason
        server.stop = threading.Event()
        params = dict(probe_params)
        timeout = float(params.get("connect_timeout", 10))
        params["connect_timeout"] = max(0.1, min(timeout, config.interval))
        server.probe = threading.Thread(
            target=_probe,
            args=(key, server, params, config.interval),
            name=f"msplugin-probe-{key[0]}:{key[1]}",
            daemon=True,
        )
        server.probe.start()
    logger.warning(
        "server %s quarantined after %d failure(s): %s; probing every %g s",
        label,
        server.failures,
        reason,
        config.interval,
    )
    return True


def record_success(key: ServerKey) -> None:
    """A connect to *key* worked: forget its failures (called off the statement path)."""
    server = _servers.get(key)
    if server is not None and server.failures and key not in down:
        with _lock:
            server.failures = 0


def _probe(key: ServerKey, server: _Server, params: dict[str, Any], interval: float) -> None:
    # The first probe runs at once: one broken connection (a KILL, an idle timeout) must not
    # keep a healthy server out of rotation for a whole interval.
    stop = server.stop
    first = True
    while first or not stop.wait(interval):
        first = False
        try:
            pymysql.connect(**params).close()
        except pymysql.err.OperationalError as exc:
            if is_disconnect(exc):
                logger.debug("probe of %s: still down (%s)", server.label, exc.args[-1])
                continue
            # A server error (access denied, too many connections): the server answers.
        except Exception as exc:  # a probe thread must never die silently
            logger.debug("probe of %s failed: %r", server.label, exc)
            continue
        with _lock:
            if stop.is_set():
                return
            down.pop(key, None)
            server.failures = 0
            since = server.quarantined_at or time.monotonic()
            server.quarantined_at = None
            server.probe = None
        logger.warning(
            "server %s is back after %.1f s in quarantine (was: %s)",
            server.label,
            time.monotonic() - since,
            server.reason,
        )
        return


def quarantined() -> dict[str, str]:
    """The quarantined servers of this process, by label, with the reason."""
    with _lock:
        return {_servers[k].label: reason for k, reason in down.items()}


def reset() -> None:
    """Forget every failure and stop every probe (tests, and close_pools())."""
    with _lock:
        for server in _servers.values():
            server.stop.set()
        threads = [s.probe for s in _servers.values() if s.probe is not None]
        _servers.clear()
        down.clear()
    for t in threads:
        with contextlib.suppress(RuntimeError):
            t.join(timeout=0.1)
