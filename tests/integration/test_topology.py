"""Topology discovery on a real sandbox whose roles change under load: a planned switchover,
a failover after kill -9, a split brain, and what happens to open transactions, session
state and writes the old master refused as read-only. Each test has a sandbox of its own
(roles do not go back). The figures print with ``pytest -s``.

The writer inserts ``(id, @@server_id)``: MariaDB logs a statement that reads a system
variable as rows, so each row says which server ran the INSERT, on every server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest

import msplugin
import msplugin.aio
from msplugin import health, topology_monitor
from msplugin.sandbox import Node, Sandbox
from msplugin.sandbox_roles import _seq, failover, switchover

pytestmark = pytest.mark.integration


@pytest.fixture
def tsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of the test's own, with table w (id, server) and a config with discovery."""
    sb = Sandbox.up(tmp_path_factory.mktemp("topology"), replicas=2)
    try:
        with sb.admin(sb.primary) as c, c.cursor() as cur:
            cur.execute("CREATE TABLE test.w (id INT PRIMARY KEY, server INT)")
        sb.wait_replicated()
        yield sb
    finally:
        topology_monitor.stop_all()
        msplugin.close_pools()
        health.reset()
        sb.down(purge=True)


def discovering(sb: Sandbox, **topology: Any) -> str:
    data = json.loads(sb.config_path.read_text())
    data["sandbox"]["topology"] = {"discover": True, **topology}
    path = sb.dir / f"discover{len(list(sb.dir.glob('discover*')))}.json"
    path.write_text(json.dumps(data))
    return str(path)


def rows(sb: Sandbox, node: Node) -> dict[int, int]:
    with sb.admin(node) as c, c.cursor() as cur:
        cur.execute("SELECT id, server FROM test.w")
        return {int(i): int(s) for i, s in cur.fetchall()}


@dataclass
class Load:
    """A writer (autocommit INSERTs, ids 1, 2, ...) and two readers, each on its own
    facade connection, recording every outcome with its time."""

    config: str
    acked: list[tuple[int, str, float]] = field(default_factory=list)  # id, server, when
    failed: list[tuple[int, float, float, BaseException]] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    read_errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self.write)]
        self.threads += [threading.Thread(target=self.read) for _ in range(2)]
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def write(self) -> None:
        conn = msplugin.connect("sandbox", config=self.config)
        cur = conn.cursor()
        i = 0
        while not self.stop.is_set():
            i += 1
            began = time.monotonic()
            try:
                cur.execute("INSERT INTO w VALUES (%s, @@server_id)", (i,))
            except pymysql.err.Error as exc:
                self.failed.append((i, began, time.monotonic(), exc))
                time.sleep(0.02)
                continue
            assert conn.last_used is not None
            self.acked.append((i, conn.last_used.name, time.monotonic()))
            time.sleep(0.002)
        conn.close()

    def read(self) -> None:
        conn = msplugin.connect("sandbox", config=self.config)
        cur = conn.cursor()
        while not self.stop.is_set():
            try:
                cur.execute("SELECT COUNT(*) FROM w")
                cur.fetchall()
                self.reads.append(time.monotonic())
            except pymysql.err.Error as exc:
                self.read_errors.append(exc)
            time.sleep(0.002)
        conn.close()

    def longest_stall(self, after: float = 0.0) -> float:
        times = [when for _, _, when in self.acked if when >= after]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def alias(sb: Sandbox, node: Node) -> str:
    """The config alias of *node* (the file the sandbox wrote: primary first)."""
    data = json.loads(sb.config_path.read_text())["sandbox"]
    servers = {**data["master"], **data["slave"]}
    return next(name for name, s in servers.items() if s["port"] == node.port)


def test_planned_switchover_under_load_loses_and_misplaces_nothing(
    tsb: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tsb.primary, tsb.replicas[0]
    load = Load(discovering(tsb))
    load.start()
    time.sleep(1.0)
    change = switchover(tsb, new.name)
    time.sleep(2.0)
    load.finish()

    assert not load.failed, load.failed[:3]  # 0 errors reach the application
    assert not load.read_errors, load.read_errors[:3]
    tsb.wait_replicated()
    on_new = rows(tsb, new)
    acked = {i for i, _, _ in load.acked}
    assert set(on_new) == acked  # every acknowledged insert, exactly once (primary key)
    # Nothing ran on the old primary after it became read-only: its rows all come before
    # the first row the new primary ran.
    old_ids = [i for i, s in on_new.items() if s == old.server_id]
    new_ids = [i for i, s in on_new.items() if s == new.server_id]
    assert old_ids and new_ids and max(old_ids) < min(new_ids)
    assert set(on_new.values()) == {old.server_id, new.server_id}
    # The new roles are in use within 2 s of the promotion.
    first_new = min(when for _, server, when in load.acked if server == alias(tsb, new))
    assert first_new - change.promoted_at < 2.0
    stall = load.longest_stall()
    with capsys.disabled():
        print(
            f"\nswitchover: {len(acked)} inserts, 0 errors, {len(load.reads)} reads; "
            f"promotion {(change.promoted_at - change.started) * 1000:.0f} ms into the "
            f"switchover; first write on the new primary {(first_new - change.promoted_at) * 1000:.0f}"
            f" ms after it; longest write stall {stall * 1000:.0f} ms"
        )


def test_failover_after_kill_9_fails_writes_fast_and_keeps_reads(
    tsb: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tsb.primary, tsb.replicas[0]
    load = Load(discovering(tsb))
    load.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    tsb.kill(old.name)
    time.sleep(1.5)
    change = failover(tsb, new.name)
    time.sleep(2.0)
    load.finish()

    assert not load.read_errors, load.read_errors[:3]  # reads never stop
    assert any(killed_at < t < change.promoted_at for t in load.reads)
    window = [f for f in load.failed if f[1] >= killed_at - 0.1]
    assert window and len(window) == len(load.failed)
    for _, began, ended, exc in window:
        assert ended - began < 3.0, exc  # bounded
        assert began < change.promoted_at + 2.0, exc
        if isinstance(exc, msplugin.NoBackendAvailable):
            assert alias(tsb, old) in str(exc)
        else:  # the INSERT in flight at the kill: it may have run, so it was not retried
            assert "may have run" in str(exc)
    first_new = min(when for _, server, when in load.acked if server == alias(tsb, new))
    assert first_new - change.promoted_at < 2.0
    # No acknowledged write is lost that the promoted replica had received: what is
    # missing on it was committed on the dead primary alone, past what it received.
    on_new = rows(tsb, new)
    lost = {i for i, _, _ in load.acked} - set(on_new)
    received = change.received[new.name]
    tsb.start(old.name)  # read-only now (its role is replica): what it committed
    on_old = rows(tsb, old)
    assert lost <= set(on_old)
    if lost:
        with tsb.admin(old) as c, c.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            assert _seq(str(cur.fetchone()[0])) > _seq(received)
    with capsys.disabled():
        print(
            f"\nfailover: {len(window)} writes failed between the kill and the promotion "
            f"(longest {max(e - b for _, b, e, _ in window) * 1000:.0f} ms), first write "
            f"on the new primary {(first_new - change.promoted_at) * 1000:.0f} ms after "
            f"the promotion, {len(lost)} acknowledged writes lost, reads never failed"
        )


def test_a_restarted_old_primary_that_is_writable_gets_no_writes(
    tsb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = tsb.primary, tsb.replicas[0]
    config = discovering(tsb, interval=0.2)
    survivor = msplugin.connect("sandbox", config=config)
    tsb.kill(old.name)
    failover(tsb, new.name)
    tsb.start(old.name)
    with tsb.admin(old) as c, c.cursor() as cur:
        cur.execute("SET GLOBAL read_only = 0")  # split brain: two writable servers
    caplog.set_level(logging.WARNING, "msplugin.topology")
    time.sleep(0.6)
    fresh = msplugin.connect("sandbox", config=config)  # the file still names old
    for n, conn in enumerate((survivor, fresh)):
        conn.cursor().execute("INSERT INTO w VALUES (%s, @@server_id)", (n,))
        assert conn.last_used is not None and conn.last_used.name == alias(tsb, new)
    cur = fresh.cursor()
    for _ in range(6):  # nor reads: it may hold writes the new primary has not
        cur.execute("SELECT @@server_id")
        assert cur.fetchone()[0] != old.server_id
    assert set(rows(tsb, new).values()) == {new.server_id}
    assert not rows(tsb, old)
    warned = [r.getMessage() for r in caplog.records if "writable as well" in r.getMessage()]
    assert len(warned) >= 2 and alias(tsb, old) in warned[-1]  # every check, until resolved
    survivor.close()
    fresh.close()


def test_a_write_the_old_master_refuses_as_read_only_runs_once_on_the_new_one(
    tsb: Sandbox,
) -> None:
    # A long interval: only the refusal makes msplugin look again.
    conn = msplugin.connect("sandbox", config=discovering(tsb, interval=60))
    cur = conn.cursor()
    cur.execute("INSERT INTO w VALUES (1, @@server_id)")
    new = tsb.replicas[0]
    switchover(tsb, new.name)
    cur.execute("INSERT INTO w VALUES (2, @@server_id)")
    assert conn.last_used is not None and conn.last_used.name == alias(tsb, new)
    assert conn.stats()["read_only_retries"] == 1
    assert rows(tsb, new)[2] == new.server_id


def test_no_writable_master_within_wait_fails_and_runs_nothing(tsb: Sandbox) -> None:
    conn = msplugin.connect("sandbox", config=discovering(tsb, interval=60, wait=0.5))
    cur = conn.cursor()
    cur.execute("INSERT INTO w VALUES (1, @@server_id)")
    with tsb.admin(tsb.primary) as c, c.cursor() as k:
        k.execute("SET GLOBAL read_only = 1")  # and nobody is promoted
    began = time.monotonic()
    with pytest.raises(msplugin.NoBackendAvailable) as info:
        cur.execute("INSERT INTO w VALUES (2, @@server_id)")
    assert 0.4 < time.monotonic() - began < 3.0
    assert "read-only" in str(info.value) and "did not run" in str(info.value)
    assert set(rows(tsb, tsb.primary)) == {1}
    with tsb.admin(tsb.primary) as c, c.cursor() as k:
        k.execute("SET GLOBAL read_only = 0")
    cur.execute("INSERT INTO w VALUES (3, @@server_id)")  # the connection is not wedged
    assert set(rows(tsb, tsb.primary)) == {1, 3}


def test_an_open_transaction_on_a_demoted_master_ends_clearly_and_state_follows(
    tsb: Sandbox,
) -> None:
    config = discovering(tsb, interval=0.2)
    data = json.loads(Path(config).read_text())
    data["sandbox"]["session_state"] = "sync"
    Path(config).write_text(json.dumps(data))
    conn = msplugin.connect("sandbox", config=config)
    cur = conn.cursor()
    cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
    conn.begin()
    cur.execute("INSERT INTO w VALUES (1, @@server_id)")
    new = tsb.replicas[0]
    switchover(tsb, new.name)
    time.sleep(0.6)
    with pytest.raises(pymysql.err.OperationalError) as info:
        cur.execute("INSERT INTO w VALUES (2, @@server_id)")
    message = str(info.value)
    assert "no longer the master" in message and "nothing was sent" in message
    conn.rollback()
    cur.execute("INSERT INTO w VALUES (3, @@server_id)")  # the next one: the new master
    assert conn.last_used is not None and conn.last_used.name == alias(tsb, new)
    cur.execute("/*ms=master*/ SELECT @@session.sql_mode")
    assert cur.fetchone()[0] == "NO_ENGINE_SUBSTITUTION"  # replayed on the new master
    assert set(rows(tsb, new)) == {3}


def test_the_asyncio_facade_follows_a_switchover(tsb: Sandbox) -> None:
    config = discovering(tsb, interval=0.2)
    new = tsb.replicas[0]

    async def scenario() -> tuple[str, str]:
        conn = await msplugin.aio.connect("sandbox", config=config)
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO w VALUES (1, @@server_id)")
            before = conn.last_used.name
            await asyncio.to_thread(switchover, tsb, new.name)
            await cur.execute("INSERT INTO w VALUES (2, @@server_id)")
            after = conn.last_used.name
        conn.close()
        await msplugin.aio.close_pools()
        return before, after

    before, after = asyncio.run(scenario())
    assert (before, after) == ("master_0", alias(tsb, new))
    assert rows(tsb, new) == {1: tsb.node("primary").server_id, 2: new.server_id}


def test_the_command_line_switches_over_and_shows_the_roles(tsb: Sandbox) -> None:
    cli = [sys.executable, "-m", "msplugin"]
    out = subprocess.run(
        [*cli, "sandbox", "switchover", "--to", "replica2", "--dir", str(tsb.dir)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert "primary -> replica2 in" in out and "replica1: replicates from replica2" in out
    out = subprocess.run(
        [*cli, "topology", "--config", str(tsb.config_path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert "master_0" in out and "listed as master read-only, replicates from slave_1" in out
    assert "group 'sandbox': master slave_1; slaves master_0, slave_0" in out
