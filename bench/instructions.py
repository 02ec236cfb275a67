"""Client instructions per statement, msplugin versus raw PyMySQL (msplugin.aio versus raw
aiomysql: the "raw_pymysql" figures of the aio kinds are aiomysql's), counted by valgrind.

Wall-clock ratios on a shared 2-core machine move by several percent from run to run;
instruction counts do not (callgrind counts the same total for the same program and input).
A child process runs one of the loops below N times through one connection, with a fixed hash
seed; running it for two values of N and taking the difference cancels start-up, imports and
connecting. Raw PyMySQL runs the same statements on the same servers. The background health
checks and replica monitor are off in the children (see _quiet). Skipped, with a note, when
valgrind is not installed.

Loops (one unit each):
  one      SELECT 1 on a replica
  pk       primary-key SELECT on a replica
  insert   autocommit INSERT on the master
  unit     autocommit off: SELECT, UPDATE, COMMIT (how SQLAlchemy and most ORMs run)
  session  service level session: INSERT, then a SELECT that must see it (raw PyMySQL: the
           INSERT on the master and the SELECT on the replica; msplugin adds the GTID check)
  sqla     SQLAlchemy Core: engine.begin(), a SELECT and an UPDATE, committed on leaving the
           block; mysql+msplugin against mysql+pymysql on the master (the same statements)
  ro       autocommit off: a primary-key SELECT and COMMIT, under trx_stickiness "optimistic"
           (on a replica) against the same facade under "master" (on the master), and raw
           PyMySQL on the master
  rw       autocommit off: SELECT row 1, UPDATE row 2, COMMIT under "optimistic" against
           "master": the SELECT runs on a replica, then again on the master before the UPDATE
           (a replayed unit)
  aone     SELECT 1 on a replica through msplugin.aio, against raw aiomysql on that replica
  apk      primary-key SELECT, the same way

    python bench/instructions.py child raw|facade KIND N CONFIG GROUP   (the measured child)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pymysql

SMALL, LARGE = 300, 1800
WARM = 200
KINDS = {
    "one": "select_1",
    "pk": "select_pk",
    "insert": "insert",
    "unit": "autocommit_off_unit",
    "session": "session_write_read",
    "sqla": "sqlalchemy_core_unit",
    "ro": "optimistic_read_only_unit",
    "rw": "optimistic_replayed_unit",
    "aone": "aio_select_1",
    "apk": "aio_select_pk",
}
# Kinds run through msplugin.aio against raw aiomysql (on the same replica).
ASYNC: Final = ("aone", "apk")
# Kinds whose facade runs under trx_stickiness "optimistic", measured against "master" too.
OPTIMISTIC: Final = ("ro", "rw")
# Kinds that run with autocommit off.
UNITS: Final = ("unit", "ro", "rw")
INSERT = "INSERT INTO bench_w (v) VALUES (%s)"
UPDATE = "UPDATE bench_w SET v = v + 1 WHERE id = %s"
READ_BACK = "SELECT v FROM bench_w WHERE id = %s"
# Of the session loop's reads: checked on a replica (and of those failed, then read on the
# master), sent to a replica known to have the write, sent to the master unchecked.
SESSION_STATS = ("gtid_checks", "gtid_check_failed", "gtid_replica_known", "use_master_session")


def create_write_table(config: str, group: str) -> None:
    """bench_w, the table the write loops change, on the master (replicated)."""
    import msplugin

    with msplugin.connect(group, config=config) as c:
        cur = c.cursor()
        cur.execute("DROP TABLE IF EXISTS bench_w")
        cur.execute("CREATE TABLE bench_w (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO bench_w (v) VALUES (0), (0)")


def _loop(kind: str, n: int, cur: Any, commit: Callable[[], None], reader: Any) -> None:
    from throughput import PK_SELECT, ROWS

    for i in range(n):
        if kind == "one":
            cur.execute("SELECT 1")
            cur.fetchall()
        elif kind == "pk":
            cur.execute(PK_SELECT, (i % ROWS,))
            cur.fetchall()
        elif kind == "insert":
            cur.execute(INSERT, (i,))
        elif kind == "ro":
            cur.execute(READ_BACK, (1,))
            cur.fetchall()
            commit()
        elif kind == "unit":
            cur.execute(READ_BACK, (1,))
            cur.fetchall()
            cur.execute(UPDATE, (1,))
            commit()
        elif kind == "rw":
            # Reads row 1, writes row 2: a read of the row this connection just wrote would
            # find the replica behind and end in a conflict (the rule, not the cost).
            cur.execute(READ_BACK, (1,))
            cur.fetchall()
            cur.execute(UPDATE, (2,))
            commit()
        else:
            cur.execute(INSERT, (i,))
            reader.execute(READ_BACK, (cur.lastrowid,))
            reader.fetchall()


def _sqla_child(mode: str, n: int, config: str, group: str) -> None:
    from sqlalchemy import URL, create_engine, text

    import msplugin

    g = msplugin.load_config(config).group(group)
    master = g.masters[0]
    if mode == "raw":
        url = URL.create(
            "mysql+pymysql", master.user, master.password, master.host, master.port, master.db
        )
    else:
        url = URL.create(
            "mysql+msplugin", master.user, master.password, group, None, master.db,
            query={"config": config},
        )  # fmt: skip
    engine = create_engine(url)
    select, update = text(READ_BACK.replace("%s", ":id")), text(UPDATE.replace("%s", ":id"))
    for _ in range(WARM + n):
        with engine.begin() as conn:
            conn.execute(select, {"id": 1}).fetchall()
            conn.execute(update, {"id": 1})


def _aio_child(mode: str, kind: str, n: int, config: str, group: str) -> None:
    import asyncio

    import aiomysql
    from throughput import PK_SELECT, ROWS

    import msplugin.aio

    async def main() -> None:
        facade = await msplugin.aio.connect(group, config=config)
        cur: Any = facade.cursor()
        await cur.execute("SELECT 1")
        await cur.fetchall()
        if mode == "raw":
            used = facade.last_used
            assert used is not None
            s = next(s for s in facade.group.slaves if s.name == used.name)
            raw = await aiomysql.connect(
                host=s.host, port=s.port, user=s.user, password=s.password, db=s.db,
                autocommit=True,
            )  # fmt: skip
            cur = await raw.cursor()
        for i in range(WARM + n):
            if kind == "aone":
                await cur.execute("SELECT 1")
            else:
                await cur.execute(PK_SELECT, (i % ROWS,))
            await cur.fetchall()
        if mode == "raw":
            raw.close()
        facade.close()

    asyncio.run(main())


def _child(mode: str, kind: str, n: int, config: str, group: str) -> None:
    from throughput import raw_connect

    import msplugin

    if kind == "sqla":
        _sqla_child(mode, n, config, group)
        return
    if kind in ASYNC:
        _aio_child(mode, kind, n, config, group)
        return

    autocommit = kind not in UNITS
    facade = msplugin.connect(group, config=config, autocommit=autocommit)
    if kind == "session":
        facade.set_qos("session")
    cur = facade.cursor()
    cur.execute("SELECT 1")
    cur.fetchall()
    commit: Callable[[], None] = facade.commit
    reader = cur
    if mode == "raw":
        used = facade.last_used
        assert used is not None
        slaves = facade.group.slaves
        slave = next((s for s in slaves if s.name == used.name), slaves[0])
        master = facade.group.masters[0]
        target = slave if kind in ("one", "pk") else master
        raw: pymysql.connections.Connection[Any] = raw_connect(target)
        raw.autocommit(autocommit)
        cur = raw.cursor()
        commit = raw.commit
        reader = raw_connect(slave).cursor() if kind == "session" else cur
    _loop(kind, WARM + n, cur, commit, reader)
    if mode == "facade" and kind in OPTIMISTIC:
        stats = facade.stats()
        print(json.dumps({k: v for k, v in stats.items() if k.startswith("optimistic_")}))
    if mode == "facade" and kind == "session":
        # Where the reads went: the figure depends on it, and on how fast the replicas
        # apply writes under valgrind (a checked read costs a second result set).
        stats = facade.stats()
        print(json.dumps({k: stats[k] for k in SESSION_STATS}))


def _count(mode: str, kind: str, n: int, config: str, group: str) -> tuple[int, str]:
    """Instructions the child ran, and what it printed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        child = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "child", mode, kind, str(n), config, group],
            check=True, capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # same dict layouts in every run
        )  # fmt: skip
        summary = re.search(rb"^summary:\s+(\d+)", out.read_bytes(), re.MULTILINE)
        assert summary is not None, "callgrind wrote no summary"
        return int(summary.group(1)), child.stdout.decode()


def _quiet(config: str, group: str, directory: str) -> str:
    """*config* with the health checks and the replica monitor off: their work follows the
    clock, not the statements, and valgrind slows the child about fifty times, so they would
    count dozens of times what they cost in a real run (background.py measures them)."""
    data = json.loads(Path(config).read_text())
    data[group]["quarantine"] = {**data[group].get("quarantine", {}), "check_interval": 0}
    data[group]["replica_stopped_limit"] = False
    path = Path(directory) / "quiet.json"
    path.write_text(json.dumps(data))
    return str(path)


def round_trips(config: str, group: str, units: int = 50) -> dict[str, float]:
    """Statements sent per unit (COM_QUERY packets, COMMIT and ROLLBACK included) of the ro
    and rw loops under "master" and "optimistic": what a replayed unit adds."""
    counted = [0]
    original = pymysql.connections.Connection._execute_command

    def counting(self: Any, command: int, sql: Any) -> Any:
        counted[0] += 1
        return original(self, command, sql)

    import msplugin

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        quiet = _quiet(config, group, tmp)
        for name, cfg in (("master", quiet), ("optimistic", _optimistic(quiet, group))):
            for kind in OPTIMISTIC:
                with msplugin.connect(group, config=cfg, autocommit=False) as facade:
                    cur = facade.cursor()
                    _loop(kind, 5, cur, facade.commit, cur)  # connected, warm
                    pymysql.connections.Connection._execute_command = counting  # type: ignore[method-assign]
                    counted[0] = 0
                    try:
                        _loop(kind, units, cur, facade.commit, cur)
                    finally:
                        pymysql.connections.Connection._execute_command = original  # type: ignore[method-assign]
                    out[f"{kind}_{name}"] = counted[0] / units
    return out


def instructions(config: str, group: str, kinds: tuple[str, ...] = tuple(KINDS)) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed (Debian: apt-get install valgrind)"}
    create_write_table(config, group)
    with tempfile.TemporaryDirectory() as tmp:
        return _instructions(_quiet(config, group, tmp), group, kinds)


def _optimistic(config: str, group: str) -> str:
    """*config* with trx_stickiness "optimistic"."""
    data = json.loads(Path(config).read_text())
    data[group]["trx_stickiness"] = "optimistic"
    path = Path(config).with_name("optimistic.json")
    path.write_text(json.dumps(data))
    return str(path)


def _instructions(config: str, group: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"statements": LARGE - SMALL}
    optimistic = _optimistic(config, group)
    for kind in kinds:
        per: dict[str, float] = {}
        modes = {"raw": config, "facade": config}
        if kind in OPTIMISTIC:
            # "master": the same facade under trx_stickiness master, the figure's baseline.
            modes = {"raw": config, "master": config, "facade": optimistic}
        for mode, cfg in modes.items():
            child = "facade" if mode == "master" else mode
            large, printed = _count(child, kind, LARGE, cfg, group)
            small, _ = _count(child, kind, SMALL, cfg, group)
            per[mode] = (large - small) / (LARGE - SMALL)
        out[KINDS[kind]] = {
            "raw_pymysql_per_stmt": per["raw"],
            "msplugin_per_stmt": per["facade"],
            "ratio": per["facade"] / per["raw"],
        }
        if kind in OPTIMISTIC:
            out[KINDS[kind]]["master_per_stmt"] = per["master"]
            out[KINDS[kind]]["ratio_to_master"] = per["facade"] / per["master"]
        if kind in OPTIMISTIC and printed:  # the facade's units in its LARGE run
            out[KINDS[kind]]["units"] = json.loads(printed)
        if kind == "session":  # the facade's reads in its LARGE run (WARM included)
            out[KINDS[kind]]["reads"] = {"total": WARM + LARGE, **json.loads(printed)}
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
elif __name__ == "__main__":
    # python bench/instructions.py CONFIG GROUP [KIND ...]: these loops only (a sandbox's config)
    sys.path.insert(0, str(Path(__file__).parent))
    print(
        json.dumps(
            instructions(sys.argv[1], sys.argv[2], tuple(sys.argv[3:]) or tuple(KINDS)), indent=2
        )
    )
