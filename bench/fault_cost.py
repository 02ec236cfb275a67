"""What a hung server costs with default settings: SIGSTOP on a sandbox server, timed.

Run last by the suite (it stops servers, and resumes them). Needs a sandbox the suite started:
with --config (servers it does not own) it is skipped.

- a read in flight on a replica that gets SIGSTOP: seconds until it is answered elsewhere;
- seconds from the SIGSTOP until the server is quarantined (new statements avoid it);
- a write to a hung master never connected before: seconds until it fails, with
  connect_timeout=2 and with the default (10 s);
- seconds from SIGCONT until the server is back in rotation.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import msplugin
from msplugin import health
from msplugin.sandbox import Sandbox


def _wait(cond: Any, timeout: float) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


def _read_in_flight(sandbox: Sandbox, config: str, group: str) -> dict[str, float]:
    health.reset()
    with msplugin.connect(group, config=config) as conn:
        cur = conn.cursor()
        cur.execute("SELECT @@server_id")
        row = cur.fetchone()
        assert row is not None
        node = sandbox.nodes[int(row[0]) - 1]  # server_id n is the n-th node
        key = ("127.0.0.1", node.port, "")
        stopped: list[float] = []

        def stop() -> None:
            sandbox.kill(node.name, signal.SIGSTOP)
            stopped.append(time.monotonic())

        timer = threading.Timer(0.3, stop)
        timer.start()
        try:
            start = time.monotonic()
            cur.execute("SELECT @@server_id, SLEEP(1)")
            answered = time.monotonic() - start
            timer.join()
            _wait(lambda: key in health.down, 10)
            quarantined = health.quarantined_since(key)
        finally:
            timer.join()
            sandbox.kill(node.name, signal.SIGCONT)
        back = _wait(lambda: key not in health.down, 10)
    return {
        "read_answered_s": answered,
        "quarantined_after_stop_s": quarantined - stopped[0],
        "back_after_cont_s": back,
    }


def _write_to_hung_master(sandbox: Sandbox, config: str, group: str) -> dict[str, float]:
    out = {}
    sandbox.kill(sandbox.primary.name, signal.SIGSTOP)
    try:
        for label, kwargs in (("connect_timeout_2", {"connect_timeout": 2}), ("default", {})):
            health.reset()
            with msplugin.connect(group, config=config, **kwargs) as conn:
                start = time.monotonic()
                try:
                    conn.cursor().execute("DO 1")
                except msplugin.OperationalError:
                    out[f"write_failed_s_{label}"] = time.monotonic() - start
    finally:
        sandbox.kill(sandbox.primary.name, signal.SIGCONT)
        health.reset()
    return out


def fault_cost(sandbox: Sandbox | None, config: str, group: str) -> dict[str, Any]:
    if sandbox is None:
        return {"skipped": "needs the suite's own sandbox (it stops servers)"}
    try:
        return {
            **_read_in_flight(sandbox, config, group),
            **_write_to_hung_master(sandbox, config, group),
        }
    finally:
        health.reset()
        msplugin.close_pools()


def report(r: dict[str, Any]) -> None:
    print("a hung server (SIGSTOP), default settings")
    if "skipped" in r:
        print(f"  skipped: {r['skipped']}")
        return
    rows = (
        ("read in flight answered by another replica", "read_answered_s", "target < 5 s"),
        ("quarantined after the SIGSTOP", "quarantined_after_stop_s", "target <= 3 s"),
        ("write to a hung master, connect_timeout=2", "write_failed_s_connect_timeout_2", "<= 3 s"),
        ("the same, default connect_timeout (10 s)", "write_failed_s_default", "<= 11 s"),
        ("back after SIGCONT", "back_after_cont_s", "one probe interval (2 s)"),
    )
    for label, key, target in rows:
        print(f"  {label:<46} {r[key]:>20.2f} s  {target}")
