"""Instructions the one-thread-at-a-time guard adds to each statement, counted by valgrind.

Cursor.execute tests and sets the connection's busy flag, and clears it in a ``finally``. This
counts that pattern alone, and for comparison a token taken with ``list.pop()`` and given back
with ``append()`` (atomic in C, but two method calls): a loop calling a function shaped like
execute() with and without the guard, for two loop lengths, so that start-up and the loop
itself cancel out. Skipped, with a note, when valgrind is not installed.

    python bench/guard_cost.py child bare|flag|token N   (the measured child)
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

SMALL, LARGE = 20_000, 120_000


class _Conn:
    def __init__(self) -> None:
        self._busy = False
        self._free = [True]
        self.memo: dict[str, int] = {"SELECT 1": 1}


def _bare(conn: _Conn, query: str) -> int:
    return conn.memo.get(query) or 0


def _flag(conn: _Conn, query: str) -> int:
    if conn._busy:
        raise RuntimeError("in use")
    conn._busy = True
    try:
        return conn.memo.get(query) or 0
    finally:
        conn._busy = False


def _token(conn: _Conn, query: str) -> int:
    free = conn._free
    try:
        free.pop()
    except IndexError:
        raise RuntimeError("in use") from None
    try:
        return conn.memo.get(query) or 0
    finally:
        free.append(True)


_MODES = {"bare": _bare, "flag": _flag, "token": _token}


def _child(mode: str, n: int) -> None:
    run = _MODES[mode]
    conn = _Conn()
    for _ in range(n):
        run(conn, "SELECT 1")


def _count(mode: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "child", mode, str(n)],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        summary = re.search(rb"^summary:\s+(\d+)", out.read_bytes(), re.MULTILINE)
        assert summary is not None, "callgrind wrote no summary"
        return int(summary.group(1))


def guard_cost() -> dict[str, Any]:
    """Instructions each guard adds to a call: the busy flag msplugin uses, and a token."""
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed (Debian: apt-get install valgrind)"}
    per = {mode: (_count(mode, LARGE) - _count(mode, SMALL)) / (LARGE - SMALL) for mode in _MODES}
    return {"flag": per["flag"] - per["bare"], "token": per["token"] - per["bare"]}


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        print(guard_cost())
