"""What session consistency (read-your-writes) costs, against eventual reads, after writes.

Three scenarios, each interleaving an eventual and a session connection write by write: reads
right after the write; reads after every replica applied it (waited for, untimed); and five
reads per write when replicas keep up.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from throughput import raw_connect

import msplugin


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
