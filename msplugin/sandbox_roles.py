"""Role changes in the sandbox: a planned switchover and a failover after the primary died.

What a DBA or a replication manager (MaxScale's monitor, orchestrator, replication-manager)
does, in the order that loses nothing: for testing msplugin's topology discovery and for
trying it by hand (``msplugin sandbox switchover|failover``). The configuration file is left
as it was: with ``topology.discover`` msplugin finds the new roles itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

import pymysql
import pymysql.cursors

from msplugin.sandbox import Node, Sandbox, SandboxError

__all__ = ["RoleChange", "failover", "switchover"]

CATCH_UP_TIMEOUT: Final = 30.0


@dataclass
class RoleChange:
    """What a switchover or failover did, step by step, and how long it took."""

    old: str
    new: str
    steps: list[tuple[float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    promoted_at: float = 0.0  # monotonic: when the new primary became writable
    received: dict[str, str] = field(default_factory=dict)  # failover: GTIDs each replica got

    def step(self, what: str) -> None:
        self.steps.append((time.monotonic() - self.started, what))

    def report(self) -> list[str]:
        lines = [f"{at * 1000:8.1f} ms  {what}" for at, what in self.steps]
        total = self.steps[-1][0] if self.steps else 0.0
        lines.append(f"{self.old} -> {self.new} in {total * 1000:.0f} ms")
        return lines


def switchover(sandbox: Sandbox, to: str | None = None) -> RoleChange:
    """Planned: the primary read-only, *to* (default: the first running replica) waits
    until it has every transaction, becomes writable, and every other node (the old
    primary too) replicates from it."""
    old = sandbox.primary
    if not sandbox.running(old):
        raise SandboxError(f"{old.name} is not running: use 'sandbox failover'")
    target = _target(sandbox, to)
    change = RoleChange(old.name, target.name)
    with sandbox.admin(old) as c, c.cursor() as cur:
        cur.execute("SET GLOBAL read_only = 1")
        change.step(f"{old.name}: read_only = 1")
        position = sandbox.position(cur)
    if not sandbox.reached(target, position, CATCH_UP_TIMEOUT):
        raise SandboxError(
            f"{target.name} did not reach GTID position {position!r} within "
            f"{CATCH_UP_TIMEOUT:.0f} s; {old.name} stays read-only: set read_only = 0 "
            "there to undo"
        )
    change.step(f"{target.name}: has {old.name}'s GTID position {position or '(empty)'}")
    others = [n for n in sandbox.nodes if n is not target and sandbox.running(n)]
    return _take_over(sandbox, change, old, target, others)


def failover(sandbox: Sandbox, to: str | None = None) -> RoleChange:
    """Unplanned: the primary is dead. *to* (default: the running replica that received
    the most) applies what it received, becomes writable, and the other running replicas
    replicate from it. The old primary stays down; it may hold writes no replica got."""
    old = sandbox.primary
    if sandbox.running(old):
        raise SandboxError(f"{old.name} is running: use 'sandbox switchover'")
    running = [n for n in sandbox.replicas if sandbox.running(n)]
    if not running:
        raise SandboxError("no replica is running")
    change = RoleChange(old.name, "")
    received = change.received = {n.name: _received(sandbox, n) for n in running}
    target = _target(sandbox, to) if to else max(running, key=lambda n: _seq(received[n.name]))
    change.new = target.name
    change.step("received: " + ", ".join(f"{n}={p or '(empty)'}" for n, p in received.items()))
    _apply_relay_log(sandbox, target)
    change.step(f"{target.name}: applied everything it received")
    return _take_over(sandbox, change, old, target, running)


def _take_over(
    sandbox: Sandbox, change: RoleChange, old: Node, target: Node, others: list[Node]
) -> RoleChange:
    """Promote *target*, record the roles, and point *others* (and a running *old*) at it."""
    _promote(sandbox, target)
    change.promoted_at = time.monotonic()
    change.step(f"{target.name}: replication reset, read_only = 0: the primary")
    old.role, target.role = "replica", "primary"
    sandbox._write_state()
    for node in others:
        if node is not target:
            sandbox.replicate_from(node, target, demoted=node is old)
            change.step(f"{node.name}: replicates from {target.name}")
    return change


def _target(sandbox: Sandbox, to: str | None) -> Node:
    if to is None:
        running = [n for n in sandbox.replicas if sandbox.running(n)]
        if not running:
            raise SandboxError("no replica is running")
        return running[0]
    node = sandbox.node(to)
    if node.role == "primary":
        raise SandboxError(f"{to} is the primary already")
    if not sandbox.running(node):
        raise SandboxError(f"{to} is not running")
    return node


def _received(sandbox: Sandbox, node: Node) -> str:
    """The GTIDs *node* has received from the dead primary (MariaDB: Gtid_IO_Pos)."""
    with sandbox.admin(node) as c, c.cursor(pymysql.cursors.DictCursor) as cur:
        if sandbox.flavor == "mariadb":
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone() or {}
            return str(row.get("Gtid_IO_Pos") or "")
        cur.execute("SELECT @@gtid_executed AS pos")
        return str((cur.fetchone() or {}).get("pos") or "")


def _seq(position: str) -> tuple[int, ...]:
    """A MariaDB GTID position's sequence numbers, domain by domain, to compare replicas."""
    parts = sorted(p.strip().split("-") for p in position.split(",") if p.strip().count("-") == 2)
    return tuple(int(p[2]) for p in parts if p[2].isdigit())


def _apply_relay_log(sandbox: Sandbox, node: Node) -> None:
    """Stop fetching (the primary is dead) and wait until the SQL thread applied the rest."""
    mariadb = sandbox.flavor == "mariadb"
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    with sandbox.admin(node) as c, c.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("STOP SLAVE IO_THREAD" if mariadb else "STOP REPLICA IO_THREAD")
        while True:
            cur.execute("SHOW SLAVE STATUS" if mariadb else "SHOW REPLICA STATUS")
            row = cur.fetchone() or {}
            state = str(row.get("Slave_SQL_Running_State", row.get("Replica_SQL_Running_State")))
            if not row or "read all relay log" in state or "has read all" in state:
                return
            if row.get("Slave_SQL_Running", row.get("Replica_SQL_Running")) != "Yes":
                raise SandboxError(f"{node.name}: its SQL thread stopped: {row}")
            if time.monotonic() > deadline:
                raise SandboxError(f"{node.name} did not apply its relay log in time")
            time.sleep(0.01)


def _promote(sandbox: Sandbox, node: Node) -> None:
    mariadb = sandbox.flavor == "mariadb"
    with sandbox.admin(node) as c, c.cursor() as cur:
        cur.execute("STOP SLAVE" if mariadb else "STOP REPLICA")
        cur.execute("RESET SLAVE ALL" if mariadb else "RESET REPLICA ALL")
        cur.execute("SET GLOBAL read_only = 0")
