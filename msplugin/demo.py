"""The state-pitfall demo: why one facade connection is several sessions, and what msplugin does.

mysqlnd_ms's documented pitfall: ``SET @myrole='master'`` runs on the master, the following
``SELECT @myrole`` on a slave, which has no such variable. Each scene is a list of statements
played on a new connection with one ``session_state`` mode; the demo prints, for every
statement, the server that ran it and why, its result, and any StateDivergenceWarning. Add a
scene to extend it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import msplugin
from msplugin.sandbox import GROUP, Sandbox

__all__ = ["SCENES", "Scene", "main", "run"]

PITFALL = ("SET @myrole='master'", "SELECT @myrole AS _role")


@dataclass(frozen=True)
class Scene:
    title: str
    mode: str  # session_state for this scene's connection
    statements: tuple[str, ...]
    note: str = ""


SCENES = (
    Scene(
        "session_state off: the pitfall, silent (mysqlnd_ms's behaviour)",
        "off",
        PITFALL,
        "SET is not a read, so it ran on the master; the SELECT is a read and ran on a "
        "slave, whose session never saw the SET.",
    ),
    Scene(
        "session_state warn (the default): the same routing, and a warning that says why",
        "warn",
        PITFALL,
    ),
    Scene(
        "session_state sync: the read goes where @myrole lives",
        "sync",
        PITFALL,
        "Reads that depend on nothing still go to the slaves.",
    ),
    Scene(
        "Hints fix it by hand in any mode: /*ms=last_used*/ or /*ms=master*/",
        "off",
        (
            "SET @myrole='master'",
            "/*ms=last_used*/SELECT @myrole AS _role",
            "/*ms=master*/SELECT @myrole AS _role",
        ),
    ),
    Scene(
        "A temporary table under warn: the SELECT fails on a slave, and the warning says why",
        "warn",
        (
            "CREATE TEMPORARY TABLE demo_tmp (v INT)",
            "INSERT INTO demo_tmp VALUES (42)",
            "SELECT v AS _value FROM demo_tmp",
        ),
    ),
    Scene(
        "The temporary table under sync: the SELECT follows the table to the master",
        "sync",
        (
            "CREATE TEMPORARY TABLE demo_tmp (v INT)",
            "INSERT INTO demo_tmp VALUES (42)",
            "SELECT v AS _value FROM demo_tmp",
        ),
    ),
)


def run(connect: Callable[[str], msplugin.Connection], out: Callable[[str], None] = print) -> None:
    """Play every scene on a connection from *connect(mode)*, printing what happened."""
    for scene in SCENES:
        out(f"\n== {scene.title}")
        with connect(scene.mode) as conn:
            for sql in scene.statements:
                _play(conn, sql, out)
        if scene.note:
            out(f"  ({scene.note})")


def _play(conn: msplugin.Connection, sql: str, out: Callable[[str], None]) -> None:
    # The decision, taken before the statement runs; its warnings are printed as raised.
    why = conn.explain(sql).reason.split("; warning: ")[0]
    cur = conn.cursor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", msplugin.StateDivergenceWarning)
        try:
            cur.execute(sql)
            error = None
        except msplugin.MySQLError as exc:
            error = exc
    used = conn.last_used
    assert used is not None
    out(f"  {sql:<42} -> {used.name} ({used.role}): {why}")
    for w in caught:
        out(f"     {w.category.__name__}: {w.message}")
    if error is not None:
        out(f"     error from {used.name}: {error.args[-1]}")
    elif cur.description is not None:
        row = cur.fetchone()
        value = "" if row is None or row[0] is None else row[0]
        if isinstance(value, bytes):
            value = value.decode()
        out(f"     @myrole = {value!r}" if "@myrole" in sql else f"     result = {value!r}")
    cur.close()


def main(
    config: str | None = None, group: str | None = None, out: Callable[[str], None] = print
) -> int:
    """Run the demo on *config*/*group*, or on a sandbox started (and stopped) for it."""
    if config is not None:
        run(_connector(config, group or GROUP), out)
        return 0
    with tempfile.TemporaryDirectory(prefix="msplugin-demo-") as tmp:
        out("Starting a sandbox topology (1 primary, 2 replicas) ...")
        sandbox = Sandbox.up(os.path.join(tmp, "sandbox"))
        try:
            out("  " + ", ".join(f"{n.name} on 127.0.0.1:{n.port}" for n in sandbox.nodes))
            run(_connector(str(sandbox.config_path), GROUP), out)
        finally:
            sandbox.down()
            out("\nSandbox stopped.")
    return 0


def _connector(config: str, group: str) -> Callable[[str], msplugin.Connection]:
    def connect(mode: str) -> msplugin.Connection:
        conn = msplugin.connect(group, config=config)
        conn.set_session_state(mode)
        return conn

    return connect
