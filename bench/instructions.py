"""Client instructions per statement, msplugin versus raw PyMySQL, counted by valgrind.

Wall-clock ratios on a shared 2-core machine move by several percent from run to run;
instruction counts do not (callgrind counts the same total for the same program and input).
A child process runs the ``SELECT 1`` or primary-key SELECT loop of throughput.py N times
through one connection, with a fixed hash seed; running it for two values of N and taking the
difference cancels start-up, imports and connecting. The background health checks and replica
monitor are off in the children (see _quiet). Skipped, with a note, when valgrind is not
installed.

    python bench/instructions.py child raw|facade one|pk N CONFIG GROUP   (the measured child)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SMALL, LARGE = 300, 1800


def _child(mode: str, kind: str, n: int, config: str, group: str) -> None:
    from throughput import PK_SELECT, ROWS, raw_connect

    import msplugin

    facade = msplugin.connect(group, config=config)
    cur = facade.cursor()
    cur.execute("SELECT 1")
    cur.fetchall()
    if mode == "raw":
        used = facade.last_used
        assert used is not None
        cur = raw_connect(next(s for s in facade.group.slaves if s.name == used.name)).cursor()
    if kind == "one":
        for _ in range(200 + n):  # 200 to warm caches, then n
            cur.execute("SELECT 1")
            cur.fetchall()
    else:
        for i in range(200 + n):
            cur.execute(PK_SELECT, (i % ROWS,))
            cur.fetchall()


def _count(mode: str, kind: str, n: int, config: str, group: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "child", mode, kind, str(n), config, group],
            check=True, capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # same dict layouts in every run
        )  # fmt: skip
        summary = re.search(rb"^summary:\s+(\d+)", out.read_bytes(), re.MULTILINE)
        assert summary is not None, "callgrind wrote no summary"
        return int(summary.group(1))


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


def instructions(config: str, group: str) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed (Debian: apt-get install valgrind)"}
    with tempfile.TemporaryDirectory() as tmp:
        return _instructions(_quiet(config, group, tmp), group)


def _instructions(config: str, group: str) -> dict[str, Any]:
    out: dict[str, Any] = {"statements": LARGE - SMALL}
    for kind, key in (("one", "select_1"), ("pk", "select_pk")):
        per = {
            mode: (
                _count(mode, kind, LARGE, config, group) - _count(mode, kind, SMALL, config, group)
            )
            / (LARGE - SMALL)
            for mode in ("raw", "facade")
        }
        out[key] = {
            "raw_pymysql_per_stmt": per["raw"],
            "msplugin_per_stmt": per["facade"],
            "ratio": per["facade"] / per["raw"],
        }
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
