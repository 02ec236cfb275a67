"""What msplugin's background threads cost the client: CPU per second while a connection idles.

The health checks (a ping per server per ``check_interval``) and the replica monitor (a
``SHOW SLAVE STATUS`` per replica per ``replica_status_interval``) run in daemon threads while
the process holds connections. This measures the process's CPU time over a few idle seconds
with a facade connection open, with the defaults and with both turned off.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import msplugin
from msplugin import health
from msplugin.monitor import monitor


def _idle_cpu(config: str, group: str, seconds: float) -> float:
    """Client CPU seconds per second of idling with one facade holding every server."""
    health.reset()
    monitor.stop()
    with msplugin.connect(group, config=config) as conn:
        cur = conn.cursor()
        cur.execute("/*ms=master*/ SELECT 1")
        for _ in range(4):
            cur.execute("SELECT 1")
        time.sleep(1.5)  # the threads start and connect
        start, wall = time.process_time(), time.monotonic()
        time.sleep(seconds)
        used = (time.process_time() - start) / (time.monotonic() - wall)
    health.reset()
    monitor.stop()
    return used


def background(config: str, group: str, seconds: float = 5.0) -> dict[str, Any]:
    data = json.loads(Path(config).read_text())
    data[group]["quarantine"] = {**data[group].get("quarantine", {}), "check_interval": 0}
    data[group]["replica_stopped_limit"] = False
    with tempfile.TemporaryDirectory() as tmp:
        quiet = Path(tmp) / "quiet.json"
        quiet.write_text(json.dumps(data))
        off = _idle_cpu(str(quiet), group, seconds)
        on = _idle_cpu(config, group, seconds)
    return {"seconds": seconds, "cpu_ms_per_s_default": on * 1000, "cpu_ms_per_s_off": off * 1000}


def report(r: dict[str, Any]) -> None:
    print(f"background threads, client CPU while idle ({r['seconds']:g} s)")
    print(
        f"  health checks + replica monitor on (defaults)  {r['cpu_ms_per_s_default']:>16.2f} ms/s"
        f"  off: {r['cpu_ms_per_s_off']:.2f} ms/s"
    )
