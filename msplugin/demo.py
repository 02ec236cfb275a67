"""The state-pitfall demo: why one facade connection is several sessions, and how to fix it.

mysqlnd_ms's documented pitfall: ``SET @myrole='master'`` runs on the master, the following
``SELECT @myrole`` on a slave, which has no such variable. Each scene is a list of statements;
the demo prints, for every statement, the server that ran it and why. Add a scene to extend it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import msplugin
from msplugin.sandbox import GROUP, Sandbox

__all__ = ["SCENES", "Scene", "main", "run"]


@dataclass(frozen=True)
class Scene:
    title: str
    statements: tuple[str, ...]
    note: str = ""


SCENES = (
    Scene(
        "The pitfall: every server has its own session, so @myrole is lost",
        ("SET @myrole='master'", "SELECT @myrole AS _role"),
        "SET is not a read, so it ran on the master; the SELECT is a read and ran on a "
        "slave, whose session never saw the SET.",
    ),
    Scene(
        "Fix 1: /*ms=last_used*/ runs the read where the previous statement ran",
        ("SET @myrole='master'", "/*ms=last_used*/SELECT @myrole AS _role"),
    ),
    Scene(
        "Fix 2: /*ms=master*/ sends the read to the master",
        ("SET @myrole='master'", "/*ms=master*/SELECT @myrole AS _role"),
    ),
    Scene(
        "The same pitfall with a temporary table (fixed with /*ms=master*/)",
        (
            "CREATE TEMPORARY TABLE demo_tmp (v INT)",
            "INSERT INTO demo_tmp VALUES (42)",
            "/*ms=master*/SELECT v AS _role FROM demo_tmp",
        ),
        "Without the hint the SELECT would run on a slave and fail: the temporary table "
        "exists only in the master's session.",
    ),
)


def run(conn: msplugin.Connection, out: Callable[[str], None] = print) -> None:
    """Play every scene on *conn*, printing each statement's server, reason and result."""
    for scene in SCENES:
        out(f"\n== {scene.title}")
        for sql in scene.statements:
            why = conn.explain(sql).reason  # the decision, taken before the statement runs
            cur = conn.cursor()
            cur.execute(sql)
            used = conn.last_used
            assert used is not None
            out(f"  {sql:<46} -> {used.name} ({used.role}): {why}")
            if cur.description is not None:
                row = cur.fetchone()
                value = "" if row is None or row[0] is None else row[0]
                if isinstance(value, bytes):
                    value = value.decode()
                out(f"     @myrole = {value!r}" if "@myrole" in sql else f"     result = {value!r}")
            cur.close()
        if scene.note:
            out(f"  ({scene.note})")


def main(
    config: str | None = None, group: str | None = None, out: Callable[[str], None] = print
) -> int:
    """Run the demo on *config*/*group*, or on a sandbox started (and stopped) for it."""
    if config is not None:
        with msplugin.connect(group or GROUP, config=config) as conn:
            run(conn, out)
        return 0
    with tempfile.TemporaryDirectory(prefix="msplugin-demo-") as tmp:
        out("Starting a sandbox topology (1 primary, 2 replicas) ...")
        sandbox = Sandbox.up(os.path.join(tmp, "sandbox"))
        try:
            out("  " + ", ".join(f"{n.name} on 127.0.0.1:{n.port}" for n in sandbox.nodes))
            with msplugin.connect(GROUP, config=str(sandbox.config_path)) as conn:
                run(conn, out)
        finally:
            sandbox.down()
            out("\nSandbox stopped.")
    return 0
