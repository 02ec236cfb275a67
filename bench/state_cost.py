"""What session-state tracking costs per statement: warn and sync versus off, in one run.

Three facade connections, one per session_state mode, all reading from the same replica,
run the same primary-key SELECT in interleaved rounds. Reported: median throughput ratio
against off, client CPU per statement, and msplugin's own per-statement work with no I/O
(routing plus learning from the reply, timed with timeit), with no state anywhere and with a
user variable and a temporary table held on the master (which takes the slower path).
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

MODES = ("off", "warn", "sync")
SELECT = "SELECT id, v FROM bench_state WHERE id = %s"


def _configs(config: str, group: str, replica: str) -> dict[str, str]:
    """One config per mode, each with the single replica *replica*, so all read from it."""
    data = json.loads(Path(config).read_text())
    tmp = Path(tempfile.mkdtemp(prefix="msplugin-bench-state-"))
    paths = {}
    for mode in MODES:
        g = dict(data[group])
        g["slave"] = {replica: data[group]["slave"][replica]}
        g["session_state"] = mode
        path = tmp / f"{mode}.json"
        path.write_text(json.dumps({group: g}))
        path.chmod(0o600)
        paths[mode] = str(path)
    return paths


def _loop(cur: Any, n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        cur.execute(SELECT, (i % 100 + 1,))
        cur.fetchall()
    return time.perf_counter() - wall, time.process_time() - cpu


def _hot_us(conn: msplugin.Connection, n: int = 100_000) -> float:
    """msplugin's own work per statement, no I/O: route, then learn from the (last) reply."""
    b = conn._route(SELECT)

    def one() -> None:
        conn._after(conn._route(SELECT))

    conn._after(b)
    return min(timeit.repeat(one, number=n, repeat=5)) / n * 1e6


def state_cost(config: str, group: str, rounds: int, n: int) -> dict[str, Any]:
    with msplugin.connect(group, config=config) as c:
        cur = c.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS bench_state (id INT PRIMARY KEY, v INT)")
        cur.execute(
            "REPLACE INTO bench_state VALUES " + ",".join(f"({i},{i})" for i in range(1, 101))
        )
        replica = msplugin.load_config(config).group(group).slaves[0].name
    time.sleep(0.5)  # replication of 100 rows on loopback
    conns = {
        m: msplugin.connect(group, config=p) for m, p in _configs(config, group, replica).items()
    }
    cursors = {m: c.cursor() for m, c in conns.items()}
    for cur in cursors.values():
        _loop(cur, n // 10)  # warm up
    tps: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    ratios: dict[str, list[float]] = {m: [] for m in MODES if m != "off"}
    for r in range(rounds):
        order = MODES[r % 3 :] + MODES[: r % 3]  # each mode leads in turn
        for mode in order:
            wall, used = _loop(cursors[mode], n)
            tps[mode].append(n / wall)
            cpu[mode].append(used / n * 1e6)
        for mode in ratios:
            ratios[mode].append(tps[mode][-1] / tps["off"][-1])
    hot = {m: _hot_us(c) for m, c in conns.items()}
    for mode in ("warn", "sync"):  # state held on the master: the slower path
        cur = cursors[mode]
        cur.execute("SET @bench_var = 1")
        cur.execute("CREATE TEMPORARY TABLE bench_tmp (v INT)")
        _loop(cur, 10)
    hot_with_state = {m: _hot_us(conns[m]) for m in ("warn", "sync")}
    for c in conns.values():
        c.close()
    return {
        "replica": replica,
        "rounds": rounds,
        "statements_per_round": n,
        "tps_median": {m: statistics.median(v) for m, v in tps.items()},
        "ratio_to_off_median": {m: statistics.median(v) for m, v in ratios.items()},
        "ratio_to_off_per_round": ratios,
        "client_cpu_us_per_stmt": {m: statistics.median(v) for m, v in cpu.items()},
        "own_work_us_per_stmt": hot,
        "own_work_us_per_stmt_with_state_held": hot_with_state,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"session_state cost, PK SELECT on {r['replica']}, {r['rounds']} interleaved rounds x "
        f"{r['statements_per_round']} statements"
    )
    print(f"  {'':<6} {'stmt/s':>8} {'ratio to off':>13} {'client CPU us':>14} {'own work us':>12}")
    for m in MODES:
        ratio = "" if m == "off" else f"{r['ratio_to_off_median'][m]:.3f}"
        print(
            f"  {m:<6} {r['tps_median'][m]:>8.0f} {ratio:>13} "
            f"{r['client_cpu_us_per_stmt'][m]:>14.1f} {r['own_work_us_per_stmt'][m]:>12.2f}"
        )
    held = r["own_work_us_per_stmt_with_state_held"]
    print(
        f"  own work with a variable and a temporary table held on the master: "
        f"warn {held['warn']:.2f} us, sync {held['sync']:.2f} us  (target: <= 2% extra)"
    )
