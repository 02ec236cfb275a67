"""Quarantine bookkeeping (msplugin.health) with the probe's connect replaced: no server."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from msplugin import health
from msplugin.config.model import QuarantineConfig
from msplugin.monitor import ReplicaMonitor

KEY = ("127.0.0.1", 1, "")


class _Closes:
    def close(self) -> None:
        pass


def test_a_server_is_logged_back_before_it_rejoins_the_rotation() -> None:
    """A monitor that sees the server out of `down` must find the "is back" line logged."""
    health.reset()
    seen: list[bool] = []
    logged = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "is back" in record.getMessage():
                seen.append(KEY in health.down)
                logged.set()

    handler = Watch()
    logging.getLogger("msplugin.health").addHandler(handler)
    try:
        config = QuarantineConfig(failure_threshold=1, interval=0.05)
        # The probe connects through the factory: no process-wide patch another thread sees.
        params: dict[str, Any] = {
            "host": KEY[0],
            "port": KEY[1],
            "connect_factory": lambda **_: _Closes(),
        }
        assert health.record_failure(KEY, "slave_0 (test)", "test: down", config, params)
        assert logged.wait(5.0)
        thread = health._servers[KEY].probe
        if thread is not None:
            thread.join(5.0)
        assert seen == [True]  # still quarantined while the line was written
        assert KEY not in health.down  # and back in the rotation afterwards
    finally:
        logging.getLogger("msplugin.health").removeHandler(handler)
        health.reset()


def test_the_replica_monitor_survives_an_unexpected_error() -> None:
    """A connection that breaks the monitor's query in an unforeseen way (here: no
    get_server_info()) is a status error, not a dead monitor thread or a failed connect()."""
    mon = ReplicaMonitor()
    key = ("127.0.0.1", 2, "", "app")
    try:
        mon.watch(key, {"connect_factory": lambda **_: _Closes()}, 0.05, wait=True)
        status = mon.status(key)
        assert status is not None and not status.known
        assert "AttributeError" in status.error and "get_server_info" in status.error
        first = status.checked_at
        deadline = time.monotonic() + 5
        while (s := mon.status(key)) is None or s.checked_at == first:
            assert time.monotonic() < deadline, "the monitor thread stopped refreshing"
            time.sleep(0.01)
    finally:
        mon.stop()
