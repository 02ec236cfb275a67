"""Read throughput with 1, 2 and 4 client processes against 1 versus 2 replicas.

Each client process opens one facade connection and runs the primary-key SELECT of
throughput.py for a fixed time; all start together. The group has either its first replica
only or both. On this machine the clients and all three servers share 2 cores, so the figure
shows where the CPU runs out rather than how replicas scale on separate hosts.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from throughput import PK_SELECT, ROWS

import msplugin

SECONDS = 2.0
PROCESSES = (1, 2, 4)


def _client(config: str, group: str, start: Any, seconds: float) -> int:
    with msplugin.connect(group, config=config) as c:
        cur = c.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        start.wait()
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            for _ in range(50):
                cur.execute(PK_SELECT, (n % ROWS,))
                cur.fetchall()
                n += 1
        return n


def _config(config: str, group: str, replicas: int, tmp: Path) -> str:
    data = json.loads(Path(config).read_text())
    slaves = data[group]["slave"]
    data[group]["slave"] = dict(list(slaves.items())[:replicas])
    path = tmp / f"replicas{replicas}.json"
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return str(path)


def scaling(config: str, group: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {"seconds": SECONDS}
    with tempfile.TemporaryDirectory() as tmp:
        for replicas in (1, 2):
            cfg = _config(config, group, replicas, Path(tmp))
            row = {}
            for procs in PROCESSES:
                with ctx.Manager() as manager:
                    start = manager.Barrier(procs)
                    with ctx.Pool(procs) as pool:
                        counts = pool.starmap(_client, [(cfg, group, start, SECONDS)] * procs)
                row[str(procs)] = sum(counts) / SECONDS
            results[f"replicas_{replicas}"] = row
    return results
