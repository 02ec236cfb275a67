"""What pooling costs and saves: pool checkout+return, and facade connect+close.

- Pool checkout + return, the pool's own work (lock, idle list, lifetime checks), no I/O:
  ``Pool.checkout()`` then ``Pool.put_back()`` of one warm connection, timed with timeit.
- The reset a return sends (COM_RESET_CONNECTION, SET NAMES, COM_INIT_DB: three round trips),
  timed alone.
- A facade connection's life with one statement on the master: ``connect()``, one
  ``SELECT 1``, ``close()``, with pooling and without, next to raw PyMySQL doing the same,
  interleaved round by round.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import pymysql

import msplugin
from msplugin.config import PoolingConfig, load_config
from msplugin.pool import Pool


def _configs(config: str, group: str, tmp: Path) -> dict[str, str]:
    data = json.loads(Path(config).read_text())
    out = {}
    for label, enabled in (("pooled", True), ("unpooled", False)):
        data[group]["pooling"] = {"enabled": enabled}
        path = tmp / f"{label}.json"
        path.write_text(json.dumps(data))
        out[label] = str(path)
    return out


def pool_cost(config: str, group: str, rounds: int = 7, n: int = 30) -> dict[str, Any]:
    master = load_config(config).group(group).masters[0]
    params = {
        "host": master.host,
        "port": master.port,
        "user": master.user,
        "password": master.password,
        "database": master.db,
        "autocommit": True,
    }
    pool = Pool(params, PoolingConfig(max_size=1), "bench")
    conn = pool.checkout()
    pool.put_back(conn)

    def cycle() -> None:
        pool.put_back(pool.checkout())

    number = 20_000
    book = min(timeit.repeat(cycle, number=number, repeat=5)) / number * 1e6
    conn = pool.checkout()
    resets = []
    for _ in range(200):
        t = time.perf_counter()
        pool._reset(conn)
        resets.append(time.perf_counter() - t)
    pool.put_back(conn)
    pool.close()

    with tempfile.TemporaryDirectory() as tmp:
        cfgs = _configs(config, group, Path(tmp))
        times: dict[str, list[float]] = {"raw_pymysql": [], "pooled": [], "unpooled": []}

        def facade(cfg: str) -> None:
            with msplugin.connect(group, config=cfg) as c:
                cur = c.cursor()
                cur.execute("/*ms=master*/ SELECT 1")
                cur.fetchall()

        def raw() -> None:
            c = pymysql.connect(**params)
            with c.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
            c.close()

        runs = {"raw_pymysql": raw, "pooled": lambda: facade(cfgs["pooled"])}
        runs["unpooled"] = lambda: facade(cfgs["unpooled"])
        for fn in runs.values():
            fn()  # warm: imports, the pool's first connection
        for r in range(rounds):
            order = list(runs)[r % 3 :] + list(runs)[: r % 3]
            for label in order:
                t = time.perf_counter()
                for _ in range(n):
                    runs[label]()
                times[label].append((time.perf_counter() - t) / n * 1e6)
        msplugin.close_pools()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "checkout_return_us": book,
        "reset_us_median": statistics.median(resets) * 1e6,
        "connect_close_us_median": med,
        "rounds": rounds,
        "per_round": n,
    }


def report(r: dict[str, Any]) -> None:
    print(f"pool checkout + return (no I/O): {r['checkout_return_us']:.2f} us  (target <= 10 us)")
    print(f"pool reset on return (3 round trips): {r['reset_us_median']:.1f} us")
    m = r["connect_close_us_median"]
    print(
        f"facade connect + SELECT 1 on the master + close ({r['rounds']} rounds x {r['per_round']}):"
    )
    for label in ("raw_pymysql", "unpooled", "pooled"):
        print(f"  {label:<12} {m[label]:8.1f} us  ({m[label] / m['raw_pymysql']:.2f} x raw)")
