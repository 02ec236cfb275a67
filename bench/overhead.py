"""msplugin's per-statement overhead against raw PyMySQL, measured in the same run.

The same ``SELECT 1`` loop runs through a raw PyMySQL connection and through an msplugin
facade connection to the same replica, in interleaved rounds (alternating which goes first),
so that drift of the machine hits both equally. Prints both throughputs, client CPU per
statement and the ratio, plus the classifier's cost per statement; writes bench/results.json.

    python bench/overhead.py [--config FILE --group G] [--rounds 7] [--statements 3000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import pymysql
from pool_cost import pool_cost
from pool_cost import report as report_pool_cost
from state_cost import report as report_state_cost
from state_cost import state_cost

import msplugin
from msplugin.classify import _classify, classify
from msplugin.config import ServerConfig
from msplugin.sandbox import GROUP, Sandbox

SQL = "SELECT 1"
TEMPLATE_100 = "SELECT id, name, email, created_at FROM users WHERE id = %s AND status = %s ORDER BY id LIMIT 1"


def loop(cursor: Any, n: int) -> tuple[float, float]:
    """Run SQL n times; return (wall seconds, client CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        cursor.execute(SQL)
        cursor.fetchall()
    return time.perf_counter() - wall, time.process_time() - cpu


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


def measure(config: str, group: str, rounds: int, n: int) -> dict[str, Any]:
    facade = msplugin.connect(group, config=config)
    fcur = facade.cursor()
    fcur.execute(SQL)
    used = facade.last_used
    assert used is not None and used.role == "slave", "the benchmark needs a replica"
    server = next(s for s in facade.group.slaves if s.name == used.name)
    raw = raw_connect(server)
    rcur = raw.cursor()
    loop(rcur, n // 10)  # warm both
    loop(fcur, n // 10)
    raw_tps, ms_tps, raw_cpu, ms_cpu, ratios = [], [], [], [], []
    for r in range(rounds):
        order = (
            [("raw", rcur), ("msplugin", fcur)]
            if r % 2 == 0
            else [("msplugin", fcur), ("raw", rcur)]
        )
        result = {}
        for name, cur in order:
            result[name] = loop(cur, n)
        raw_tps.append(n / result["raw"][0])
        ms_tps.append(n / result["msplugin"][0])
        raw_cpu.append(result["raw"][1] / n * 1e6)
        ms_cpu.append(result["msplugin"][1] / n * 1e6)
        ratios.append(ms_tps[-1] / raw_tps[-1])
    raw.close()
    facade.close()
    return {
        "server": str(used),
        "rounds": rounds,
        "statements_per_round": n,
        "raw_pymysql_tps_median": statistics.median(raw_tps),
        "msplugin_tps_median": statistics.median(ms_tps),
        "ratio_median": statistics.median(ratios),
        "ratio_per_round": ratios,
        "raw_client_cpu_us_per_stmt": statistics.median(raw_cpu),
        "msplugin_client_cpu_us_per_stmt": statistics.median(ms_cpu),
    }


def read_after_write(
    conns: dict[str, msplugin.Connection],
    n: int,
    replicas: list[Any] | None,
    reads_per_write: int = 1,
) -> dict[str, dict[str, float]]:
    """For each connection in turn, n times: INSERT, [untimed: wait until every replica in
    *replicas* applied it], then a timed SELECT of that row. Interleaving the connections
    step by step makes drift of this 2-core machine hit every level alike."""
    times: dict[str, list[float]] = {k: [] for k in conns}
    writes: dict[str, list[float]] = {k: [] for k in conns}
    replica = dict.fromkeys(conns, 0)
    stale = dict.fromkeys(conns, 0)
    cursors = {k: c.cursor() for k, c in conns.items()}
    for i in range(n):
        for level, conn in conns.items():
            cur = cursors[level]
            t = time.perf_counter()
            cur.execute("INSERT INTO bench_rw (v) VALUES (%s)", (i,))
            writes[level].append(time.perf_counter() - t)
            row_id = cur.lastrowid
            if replicas is not None:
                cur.execute("/*ms=master*/SELECT @@gtid_binlog_pos")
                (position,) = cur.fetchone()
                for r in replicas:
                    r.execute("SELECT MASTER_GTID_WAIT(%s, 5)", (position,))
                    r.fetchall()
            for _ in range(reads_per_write):
                t = time.perf_counter()
                cur.execute("SELECT v FROM bench_rw WHERE id = %s", (row_id,))
                row = cur.fetchone()
                times[level].append(time.perf_counter() - t)
                used = conn.last_used
                replica[level] += used is not None and used.role == "slave"
                stale[level] += row != (i,)
    return {
        level: {
            "read_us_median": statistics.median(times[level]) * 1e6,
            "write_us_median": statistics.median(writes[level]) * 1e6,
            "replica_share": replica[level] / (n * reads_per_write),
            "stale": stale[level],
        }
        for level in conns
    }


def consistency_cost(config: str, group: str, n: int) -> dict[str, Any]:
    """Session-consistent reads versus eventual reads after writes, interleaved per write."""
    data = json.loads(Path(config).read_text())
    paths = {}
    tmp = Path(tempfile.mkdtemp(prefix="msplugin-bench-"))
    for level, filters in (
        ("eventual", {"random": {}}),
        ("session", {"quality_of_service": {"session_consistency": 1}, "random": {}}),
    ):
        data[group]["filters"] = filters
        paths[level] = tmp / f"{level}.json"
        paths[level].write_text(json.dumps(data))
        paths[level].chmod(0o600)
    with msplugin.connect(group, config=config) as c:
        c.cursor().execute(
            "CREATE TABLE IF NOT EXISTS bench_rw (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"
        )
    # "Replicas keep up": before each timed read, an untimed helper connection per replica
    # waits until that replica has applied the write.
    helpers = [raw_connect(s) for s in msplugin.load_config(config).group(group).slaves]
    results: dict[str, Any] = {}
    waiting = [h.cursor() for h in helpers]
    scenarios = (
        ("right_after_write", None, 1),
        ("replicas_keep_up", waiting, 1),  # worst case: a new GTID before every read
        ("replicas_keep_up_5_reads_per_write", waiting, 5),
    )
    for label, wait, reads in scenarios:
        conns = {level: msplugin.connect(group, config=str(path)) for level, path in paths.items()}
        try:
            read_after_write(conns, n // 10, wait, reads)  # warm up
            summary: dict[str, Any] = read_after_write(conns, n // reads, wait, reads)
        finally:
            for c in conns.values():
                c.close()
        summary["latency_ratio_session_eventual"] = (
            summary["session"]["read_us_median"] / summary["eventual"]["read_us_median"]
        )
        results[label] = summary
    for h in helpers:
        h.close()
    return results


def classifier_cost() -> dict[str, float]:
    classify(TEMPLATE_100)
    n = 1_000_000
    cached = min(timeit.repeat(lambda: classify(TEMPLATE_100), number=n, repeat=3)) / n * 1e6
    m = 20_000
    uncached = (
        min(timeit.repeat(lambda: _classify(TEMPLATE_100, "default"), number=m, repeat=3)) / m * 1e6
    )
    return {"statement_chars": len(TEMPLATE_100), "cached_us": cached, "uncached_us": uncached}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config")
    ap.add_argument("--group", default=GROUP)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--statements", type=int, default=3000)
    args = ap.parse_args()
    sandbox = None
    tmp = tempfile.TemporaryDirectory(prefix="msplugin-bench-")
    config = args.config
    if config is None:
        sandbox = Sandbox.up(Path(tmp.name) / "sandbox")
        config = str(sandbox.config_path)
    try:
        results = {
            "select_1": measure(config, args.group, args.rounds, args.statements),
            "classifier": classifier_cost(),
            "consistency": consistency_cost(config, args.group, n=1000),
            "session_state": state_cost(config, args.group, args.rounds, args.statements),
            "pool": pool_cost(config, args.group),
        }
    finally:
        if sandbox is not None:
            sandbox.down()
        tmp.cleanup()
    s, c = results["select_1"], results["classifier"]
    print(
        f"SELECT 1 on {s['server']}, {s['rounds']} interleaved rounds x {s['statements_per_round']} statements"
    )
    print(f"  {'':<10} {'stmt/s':>10} {'client CPU us/stmt':>20}")
    print(
        f"  {'PyMySQL':<10} {s['raw_pymysql_tps_median']:>10.0f} {s['raw_client_cpu_us_per_stmt']:>20.1f}"
    )
    print(
        f"  {'msplugin':<10} {s['msplugin_tps_median']:>10.0f} {s['msplugin_client_cpu_us_per_stmt']:>20.1f}"
    )
    print(f"  ratio msplugin/PyMySQL (median of rounds): {s['ratio_median']:.3f}  (target >= 0.95)")
    print(
        f"classifier, {c['statement_chars']}-char statement: {c['cached_us']:.3f} us cached, {c['uncached_us']:.2f} us uncached"
    )
    for label, r in results["consistency"].items():
        e, ss = r["eventual"], r["session"]
        print(f"reads {label.replace('_', ' ')} (1000 reads per level, interleaved per write):")
        print(
            f"  eventual: {e['read_us_median']:7.1f} us/read, {e['replica_share']:6.1%} on replicas, {e['stale']} stale"
        )
        print(
            f"  session:  {ss['read_us_median']:7.1f} us/read, {ss['replica_share']:6.1%} on replicas, {ss['stale']} stale"
        )
        print(
            f"  session/eventual latency: {r['latency_ratio_session_eventual']:.2f} (target <= 1.2 when replicas keep up)"
        )
        print(
            f"  writes (INSERT): eventual {e['write_us_median']:.1f} us, session {ss['write_us_median']:.1f} us"
        )
    report_state_cost(results["session_state"])
    report_pool_cost(results["pool"])
    out = Path(__file__).with_name("results.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
