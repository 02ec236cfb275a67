"""Routed statements against raw PyMySQL on the same replica, in one run.

Two loops, ``SELECT 1`` and a primary-key ``SELECT`` of one row, each run through a raw PyMySQL
connection and an msplugin facade connection to the same replica, in many short rounds that
alternate which goes first: drift of this 2-core machine (which also runs the three servers)
hits both alike. Reported per loop: median throughput of each, the ratio of the summed times
(throughput msplugin / PyMySQL), the median of per-round ratios, and client CPU per statement.

Wall-clock ratios on a loaded 2-core machine move by several percent between runs; client
*instructions* per statement (instructions.py, under valgrind) do not.
"""

from __future__ import annotations

import statistics
import time
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
        port=server.port or 3306,
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


def measure(config: str, group: str, sql: str, keyed: bool, rounds: int, n: int) -> dict[str, Any]:
    facade = msplugin.connect(group, config=config)
    fcur = facade.cursor()
    fcur.execute("SELECT 1")
    fcur.fetchall()
    used = facade.last_used
    assert used is not None and used.role == "slave", "the benchmark needs a replica"
    server = next(s for s in facade.group.slaves if s.name == used.name)
    raw = raw_connect(server)
    rcur = raw.cursor()
    _loop(rcur, sql, keyed, n)  # warm both
    _loop(fcur, sql, keyed, n)
    assert facade.last_used is not None and facade.last_used.name == used.name
    wall: dict[str, list[float]] = {"raw": [], "msplugin": []}
    cpu: dict[str, list[float]] = {"raw": [], "msplugin": []}
    for r in range(rounds):
        pair = [("raw", rcur), ("msplugin", fcur)]
        for name, cur in pair if r % 2 == 0 else pair[::-1]:
            w, c = _loop(cur, sql, keyed, n)
            wall[name].append(w)
            cpu[name].append(c)
    raw.close()
    facade.close()
    ratios = [r / m for r, m in zip(wall["raw"], wall["msplugin"], strict=True)]
    return {
        "statement": sql,
        "server": str(used),
        "rounds": rounds,
        "statements_per_round": n,
        "raw_pymysql_tps_median": n / statistics.median(wall["raw"]),
        "msplugin_tps_median": n / statistics.median(wall["msplugin"]),
        "ratio_total": sum(wall["raw"]) / sum(wall["msplugin"]),
        "ratio_median_of_rounds": statistics.median(ratios),
        "raw_client_cpu_us_per_stmt": sum(cpu["raw"]) / (rounds * n) * 1e6,
        "msplugin_client_cpu_us_per_stmt": sum(cpu["msplugin"]) / (rounds * n) * 1e6,
    }


def throughput(config: str, group: str, rounds: int, n: int) -> dict[str, Any]:
    create_pk_table(config, group)
    return {
        "select_1": measure(config, group, "SELECT 1", False, rounds, n),
        "select_pk": measure(config, group, PK_SELECT, True, rounds, n),
    }
