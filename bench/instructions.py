"""Client instructions per statement, msplugin versus raw PyMySQL, counted by valgrind.

Wall-clock ratios on a shared 2-core machine move by several percent from run to run;
instruction counts do not (callgrind counts the same total for the same program and input).
A child process runs the primary-key SELECT loop of throughput.py N times through one
connection; running it for two values of N and taking the difference cancels start-up,
imports and connecting. Skipped, with a note, when valgrind is not installed.

    python bench/instructions.py child raw|facade N CONFIG GROUP     (the measured child)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SMALL, LARGE = 300, 1800


def _child(mode: str, n: int, config: str, group: str) -> None:
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
    for i in range(200 + n):  # 200 to warm caches, then n
        cur.execute(PK_SELECT, (i % ROWS,))
        cur.fetchall()


def _count(mode: str, n: int, config: str, group: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "child", mode, str(n), config, group],
            check=True, capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # same dict layouts in every run
        )  # fmt: skip
        summary = re.search(rb"^summary:\s+(\d+)", out.read_bytes(), re.MULTILINE)
        assert summary is not None, "callgrind wrote no summary"
        return int(summary.group(1))


def instructions(config: str, group: str) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed (Debian: apt-get install valgrind)"}
    per: dict[str, float] = {}
    for mode in ("raw", "facade"):
        per[mode] = (_count(mode, LARGE, config, group) - _count(mode, SMALL, config, group)) / (
            LARGE - SMALL
        )
    return {
        "raw_pymysql_per_stmt": per["raw"],
        "msplugin_per_stmt": per["facade"],
        "ratio": per["facade"] / per["raw"],
        "statements": LARGE - SMALL,
    }


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
