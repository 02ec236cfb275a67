"""Routed statements against raw PyMySQL on the same replica, in one run.

Two loops, ``SELECT 1`` and a primary-key ``SELECT`` of one row, each run through a raw PyMySQL
connection, a second raw PyMySQL connection (the control) and an msplugin facade connection to
the same replica, in many short rounds that rotate which goes first: drift of this 2-core
machine (which also runs the three servers) hits all alike. Reported per loop: median
throughput, the ratio of the summed times (throughput msplugin / PyMySQL), the median and
quartiles of per-round ratios, the same for the control (PyMySQL / PyMySQL: what this machine's
noise alone gives), and client CPU per statement.

Wall-clock ratios on a loaded 2-core machine move by several percent between runs; client
*instructions* per statement (instructions.py, under valgrind) do not.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pymysql

import msplugin
from msplugin.config import ServerConfig

PK_SELECT = "SELECT id, name, email, created_at FROM bench_pk WHERE id = %s"
ROWS = 1000


def raw_connect(server: ServerConfig) -> pymysql.connections.Connection[Any]:
    """A plain PyMySQL connection to one configured server (the baseline)."""
    return pymysql.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        database=server.db,
        autocommit=True,
    )


def create_pk_table(config: str, group: str) -> None:
    """bench_pk with ROWS rows, on the master; waits until every replica has them."""
    with msplugin.connect(group, config=config) as c:
        cur = c.cursor()
        cur.execute("DROP TABLE IF EXISTS bench_pk")
        cur.execute(
            "CREATE TABLE bench_pk (id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(80),"
            " created_at DATETIME)"
        )
        cur.executemany(
            "INSERT INTO bench_pk VALUES (%s, %s, %s, NOW())",
            [(i, f"user {i}", f"user{i}@example.com") for i in range(ROWS)],
        )
        cur.execute("/*ms=master*/SELECT @@gtid_binlog_pos")
        (position,) = cur.fetchone()
        for server in c.group.slaves:
            r = raw_connect(server)
            with r.cursor() as rc:
                rc.execute("SELECT MASTER_GTID_WAIT(%s, 30)", (position,))
            r.close()


def _loop(cursor: Any, sql: str, keyed: bool, n: int) -> tuple[float, float]:
    """Run *sql* n times (with a primary key argument if *keyed*); (wall s, client CPU s)."""
    wall, cpu = time.perf_counter(), time.process_time()
    if keyed:
        for i in range(n):
            cursor.execute(sql, (i % ROWS,))
            cursor.fetchall()
    else:
        for _ in range(n):
            cursor.execute(sql)
            cursor.fetchall()
    return time.perf_counter() - wall, time.process_time() - cpu


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def measure(config: str, group: str, sql: str, keyed: bool, rounds: int, n: int) -> dict[str, Any]:
    """Three contenders on the same replica: PyMySQL, a second PyMySQL connection (the
    control: its ratio to the first is this machine's noise) and msplugin."""
    facade = msplugin.connect(group, config=config)
    fcur = facade.cursor()
    fcur.execute("SELECT 1")
    fcur.fetchall()
    used = facade.last_used
    assert used is not None and used.role == "slave", "the benchmark needs a replica"
    server = next(s for s in facade.group.slaves if s.name == used.name)
    raw, control = raw_connect(server), raw_connect(server)
    cursors = {"raw": raw.cursor(), "control": control.cursor(), "msplugin": fcur}
    for cur in cursors.values():
        _loop(cur, sql, keyed, n)  # warm all three
    assert facade.last_used is not None and facade.last_used.name == used.name
    wall: dict[str, list[float]] = {name: [] for name in cursors}
    cpu: dict[str, list[float]] = {name: [] for name in cursors}
    order = list(cursors)
    for r in range(rounds):
        for name in order[r % 3 :] + order[: r % 3]:  # each goes first, second, third in turn
            w, c = _loop(cursors[name], sql, keyed, n)
            wall[name].append(w)
            cpu[name].append(c)
    raw.close()
    control.close()
    facade.close()
    ratios = [r / m for r, m in zip(wall["raw"], wall["msplugin"], strict=True)]
    noise = [r / c for r, c in zip(wall["raw"], wall["control"], strict=True)]
    return {
        "statement": sql,
        "server": str(used),
        "rounds": rounds,
        "statements_per_round": n,
        "raw_pymysql_tps_median": n / statistics.median(wall["raw"]),
        "msplugin_tps_median": n / statistics.median(wall["msplugin"]),
        "ratio_total": sum(wall["raw"]) / sum(wall["msplugin"]),
        "ratio_median_of_rounds": statistics.median(ratios),
        "ratio_quartiles": _quartiles(ratios),
        "control_ratio_total": sum(wall["raw"]) / sum(wall["control"]),
        "control_quartiles": _quartiles(noise),
        "raw_client_cpu_us_per_stmt": sum(cpu["raw"]) / (rounds * n) * 1e6,
        "control_client_cpu_us_per_stmt": sum(cpu["control"]) / (rounds * n) * 1e6,
        "msplugin_client_cpu_us_per_stmt": sum(cpu["msplugin"]) / (rounds * n) * 1e6,
    }


@contextmanager
def pinned(server_pids: list[int]) -> Iterator[str]:
    """This process on the first CPU it may use and the servers' threads on the others, for
    the loops only: a client and a server thread that migrate between the 2 cores of this
    machine made the per-round ratios spread by +-30 percent, pinned by +-3. Yields how."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not server_pids:
        yield "not pinned (one CPU, or servers not started by the suite)"
        return
    client, servers = {cpus[0]}, set(cpus[1:])
    saved: dict[int, set[int]] = {}
    for pid in server_pids:
        for tid in (int(t) for t in os.listdir(f"/proc/{pid}/task")):
            saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, servers)  # threads started later inherit it
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, client)
    try:
        yield f"client on CPU {cpus[0]}, servers on CPU {','.join(map(str, sorted(servers)))}"
    finally:
        os.sched_setaffinity(0, own)
        for tid, mask in saved.items():
            with suppress(ProcessLookupError):
                os.sched_setaffinity(tid, mask)


def throughput(
    config: str, group: str, rounds: int, n: int, server_pids: list[int]
) -> dict[str, Any]:
    create_pk_table(config, group)
    with pinned(server_pids) as how:
        return {
            "cpus": how,
            "select_1": measure(config, group, "SELECT 1", False, rounds, n),
            "select_pk": measure(config, group, PK_SELECT, True, rounds, n),
        }
