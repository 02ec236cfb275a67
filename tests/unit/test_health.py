"""Quarantine bookkeeping (msplugin.health) with the probe's connect replaced: no server."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from msplugin import driver, health
from msplugin.config.model import QuarantineConfig

KEY = ("127.0.0.1", 1, "")


class _Closes:
    def close(self) -> None:
        pass


def test_a_server_is_logged_back_before_it_rejoins_the_rotation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A monitor that sees the server out of `down` must find the "is back" line logged."""
    health.reset()
    monkeypatch.setattr(driver, "connect", lambda **params: _Closes())
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
        params: dict[str, Any] = {"host": KEY[0], "port": KEY[1]}
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
