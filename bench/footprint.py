"""Memory per facade connection (Python heap, traced by tracemalloc), against raw PyMySQL.

Three figures, each the traced heap growth for N live connections divided by N: a facade
connection before its first statement (lazy: nothing connected), a facade connection that has
run one read (so it holds one PyMySQL connection to a replica), and a raw PyMySQL connection.
Pooling is off here so that each facade really holds its own backend connection. Kernel
socket buffers and the servers' per-connection memory are not counted.
"""

from __future__ import annotations

import gc
import json
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from throughput import raw_connect

import msplugin

N = 100


def _per_object(make: Any) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [make() for _ in range(N)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for obj in held:
        obj.close()
    return (after - before) / N


def footprint(config: str, group: str) -> dict[str, Any]:
    data = json.loads(Path(config).read_text())
    data[group]["pooling"] = {"enabled": False}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nopool.json"
        path.write_text(json.dumps(data))
        path.chmod(0o600)
        cfg = msplugin.load_config(str(path))
        server = cfg.group(group).slaves[0]

        def lazy() -> msplugin.Connection:
            return msplugin.connect(group, config=cfg)

        def after_read() -> msplugin.Connection:
            c = msplugin.connect(group, config=cfg)
            cur = c.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
            return c

        lazy()  # warm: imports, caches
        after_read().close()
        raw_connect(server).close()
        return {
            "connections": N,
            "facade_lazy_bytes": _per_object(lazy),
            "facade_one_backend_bytes": _per_object(after_read),
            "raw_pymysql_bytes": _per_object(lambda: raw_connect(server)),
        }
