"""What session-state tracking costs per statement: warn and sync versus off, in one run.

One facade connection to one replica runs the same primary-key SELECT, with its session_state
tracker switched statement by statement between off, warn and sync (each leading in turn).
The same backend connection serves every mode, so neither the server thread nor drift of
this 2-core machine can favour one: what differs is msplugin's client-side work. Reported:
median latency and mean client CPU per statement for each mode, as ratios to off, and
msplugin's own per-statement work with no I/O (routing plus learning from the reply, timed with
timeit), with no state anywhere and with a user variable and a temporary table held on the
master (the case where every statement's table names are checked).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import msplugin
from msplugin.core import AUTOCOMMIT, Reply
from msplugin.state import Tracker

MODES = ("off", "warn", "sync")
SELECT = "SELECT id, v FROM bench_state WHERE id = %s"


def _config(config: str, group: str, replica: str) -> str:
    """A copy of the group with the single replica *replica* and session_state warn."""
    data = json.loads(Path(config).read_text())
    g = dict(data[group])
    g["slave"] = {replica: data[group]["slave"][replica]}
    g["session_state"] = "warn"  # backends open with state-change tracking, as warn/sync do
    path = Path(tempfile.mkdtemp(prefix="msplugin-bench-state-")) / "state.json"
    path.write_text(json.dumps({group: g}))
    path.chmod(0o600)
    return str(path)


def _use(conn: msplugin.Connection, tracker: Tracker | None) -> None:
    """Switch the connection's session-state tracking to *tracker* (kept between switches)."""
    conn._core.tracker = tracker
    conn._core.moved()


def _hot_us(conn: msplugin.Connection, n: int = 100_000) -> float:
    """msplugin's own work per statement, no I/O: the core routes, then learns from a reply."""

    core = conn._core
    replica = core.slave_names[0]
    reply = Reply(AUTOCOMMIT)

    def one() -> None:
        memo = core.memo.get(SELECT)
        if memo is None:
            decided = core.decided(SELECT, "default")
            core.routed(replica, "slave", decided.d.stat)
            core.learn(decided.c, decided.eff, replica, reply)
            core.moved()
        else:
            core.ran(memo, replica, AUTOCOMMIT)

    one()
    return min(timeit.repeat(one, number=n, repeat=5)) / n * 1e6


def state_cost(config: str, group: str, rounds: int, n: int) -> dict[str, Any]:
    with msplugin.connect(group, config=config) as c:
        cur = c.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS bench_state (id INT PRIMARY KEY, v INT)")
        values = ",".join(f"({i},{i})" for i in range(1, 101))
        cur.execute(f"REPLACE INTO bench_state VALUES {values}")
        replica = msplugin.load_config(config).group(group).slaves[0].name
    time.sleep(0.5)  # replication of 100 rows on loopback
    conn = msplugin.connect(group, config=_config(config, group, replica))
    names = tuple(conn.session_state())
    trackers: dict[str, Tracker | None] = {
        "off": None,
        "warn": Tracker("warn", names),
        "sync": Tracker("sync", names),
    }
    cur = conn.cursor()
    latency: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    total = rounds * n
    for i in range(total + total // 10):
        for mode in MODES[i % 3 :] + MODES[: i % 3]:
            _use(conn, trackers[mode])
            c0, t0 = time.thread_time(), time.perf_counter()
            cur.execute(SELECT, (i % 100 + 1,))
            cur.fetchall()
            t1, c1 = time.perf_counter(), time.thread_time()
            if i >= total // 10:  # the first tenth warms up
                latency[mode].append(t1 - t0)
                cpu[mode].append(c1 - c0)
    median_us = {m: statistics.median(v) * 1e6 for m, v in latency.items()}
    cpu_us = {m: statistics.fmean(v) * 1e6 for m, v in cpu.items()}
    hot = {}
    for mode in MODES:
        _use(conn, trackers[mode])
        hot[mode] = _hot_us(conn)
    held = {}
    for mode in ("warn", "sync"):  # state held on the master: table names are checked
        _use(conn, trackers[mode])
        cur.execute("SET @bench_var = 1")
        cur.execute("CREATE TEMPORARY TABLE IF NOT EXISTS bench_tmp (v INT)")
        cur.execute(SELECT, (1,))
        cur.fetchall()
        held[mode] = _hot_us(conn)
    conn.close()
    return {
        "replica": replica,
        "statements_per_mode": total,
        "latency_us_median": median_us,
        "latency_ratio_to_off": {m: median_us[m] / median_us["off"] for m in ("warn", "sync")},
        "client_cpu_us_mean": cpu_us,
        "client_cpu_ratio_to_off": {m: cpu_us[m] / cpu_us["off"] for m in ("warn", "sync")},
        "own_work_us_per_stmt": hot,
        "own_work_us_per_stmt_with_state_held": held,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"session_state cost, PK SELECT on {r['replica']}, {r['statements_per_mode']} statements "
        "per mode, modes interleaved statement by statement on one connection"
    )
    print(
        f"  {'':<6} {'latency us':>11} {'ratio':>7} {'client CPU us':>14} {'ratio':>7} {'own work us':>12}"
    )
    for m in MODES:
        lat = "" if m == "off" else f"{r['latency_ratio_to_off'][m]:.3f}"
        cpu = "" if m == "off" else f"{r['client_cpu_ratio_to_off'][m]:.3f}"
        print(
            f"  {m:<6} {r['latency_us_median'][m]:>11.1f} {lat:>7} "
            f"{r['client_cpu_us_mean'][m]:>14.1f} {cpu:>7} {r['own_work_us_per_stmt'][m]:>12.2f}"
        )
    held = r["own_work_us_per_stmt_with_state_held"]
    print(
        f"  own work with a variable and a temporary table held on the master: "
        f"warn {held['warn']:.2f} us, sync {held['sync']:.2f} us  (target: at most 2% extra)"
    )
