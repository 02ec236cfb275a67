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

import msplugin
from msplugin.classify import _classify, classify
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


def measure(config: str, group: str, rounds: int, n: int) -> dict[str, Any]:
    facade = msplugin.connect(group, config=config)
    fcur = facade.cursor()
    fcur.execute(SQL)
    used = facade.last_used
    assert used is not None and used.role == "slave", "the benchmark needs a replica"
    server = next(s for s in facade.group.slaves if s.name == used.name)
    raw = pymysql.connect(
        host=server.host,
        port=server.port or 3306,
        user=server.user,
        password=server.password,
        database=server.db,
        autocommit=True,
    )
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


def read_after_write(conn: msplugin.Connection, n: int, pause: float) -> dict[str, float]:
    """n x (INSERT, optional pause, timed SELECT of that row); latency of the SELECT only."""
    cur = conn.cursor()
    times, replica, stale = [], 0, 0
    for i in range(n):
        cur.execute("INSERT INTO bench_rw (v) VALUES (%s)", (i,))
        row_id = cur.lastrowid
        if pause:
            time.sleep(pause)
        t = time.perf_counter()
        cur.execute("SELECT v FROM bench_rw WHERE id = %s", (row_id,))
        row = cur.fetchone()
        times.append(time.perf_counter() - t)
        used = conn.last_used
        replica += used is not None and used.role == "slave"
        stale += row != (i,)
    return {
        "read_us_median": statistics.median(times) * 1e6,
        "replica_share": replica / n,
        "stale": stale,
    }


def consistency_cost(config: str, group: str, n: int, rounds: int) -> dict[str, Any]:
    """Session-consistent reads versus eventual reads right after writes, interleaved."""
    data = json.loads(Path(config).read_text())
    data[group]["filters"] = {"quality_of_service": {"session_consistency": 1}, "random": {}}
    session_config = Path(tempfile.mkdtemp(prefix="msplugin-bench-")) / "session.json"
    session_config.write_text(json.dumps(data))
    session_config.chmod(0o600)
    data[group]["filters"] = {"random": {}}
    eventual_config = session_config.with_name("eventual.json")
    eventual_config.write_text(json.dumps(data))
    eventual_config.chmod(0o600)
    with msplugin.connect(group, config=config) as c:
        c.cursor().execute(
            "CREATE TABLE IF NOT EXISTS bench_rw (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"
        )
    results: dict[str, Any] = {}
    for label, pause in (("right_after_write", 0.0), ("replicas_keep_up", 0.005)):
        runs: dict[str, list[dict[str, float]]] = {"eventual": [], "session": []}
        for r in range(rounds):
            order = ("eventual", "session") if r % 2 == 0 else ("session", "eventual")
            for level in order:
                path = session_config if level == "session" else eventual_config
                with msplugin.connect(group, config=str(path)) as c:
                    runs[level].append(read_after_write(c, n, pause))
        summary = {
            level: {
                key: statistics.median(run[key] for run in rs)
                for key in ("read_us_median", "replica_share")
            }
            | {"stale": sum(run["stale"] for run in rs)}
            for level, rs in runs.items()
        }
        summary["latency_ratio_session_eventual"] = (
            summary["session"]["read_us_median"] / summary["eventual"]["read_us_median"]
        )
        results[label] = summary
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
            "consistency": consistency_cost(config, args.group, n=300, rounds=4),
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
        print(f"reads {label.replace('_', ' ')} (4 interleaved rounds x 300):")
        print(
            f"  eventual: {e['read_us_median']:7.1f} us/read, {e['replica_share']:6.1%} on replicas, {e['stale']} stale"
        )
        print(
            f"  session:  {ss['read_us_median']:7.1f} us/read, {ss['replica_share']:6.1%} on replicas, {ss['stale']} stale"
        )
        print(
            f"  session/eventual latency: {r['latency_ratio_session_eventual']:.2f} (target <= 1.2 when replicas keep up)"
        )
    out = Path(__file__).with_name("results.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
