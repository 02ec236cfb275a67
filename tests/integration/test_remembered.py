"""Remembered routes (the core's memo) route exactly as the full path does.

A statement already decided in the same state skips classification, decision and
session-state checks, and its reply is learned from by one status comparison. These tests run
the same statement sequences through a connection that remembers routes and one that does
not, and compare where every statement ran, what it raised or warned, and the statistics.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live import REPLICAS, server_id, setup
from routes import full_routes

import msplugin
from msplugin import health
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

READ = "SELECT @@server_id"

# Statements (and API calls, as "api:...") that change the state or depend on it.
VOCABULARY = (
    READ,
    "SELECT @@server_id, COUNT(*) FROM lane_t",
    "INSERT INTO lane_t (v) VALUES (1)",
    "SET @v = 1",
    "SELECT @v",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "START TRANSACTION READ ONLY",
    "SET autocommit = 0",
    "SET autocommit = 1",
    "SET SESSION sql_mode = 'ANSI_QUOTES'",
    "SET SESSION sql_mode = DEFAULT",
    "CREATE TEMPORARY TABLE IF NOT EXISTS lane_tmp (a INT)",
    "SELECT COUNT(*) FROM lane_tmp",
    "DROP TEMPORARY TABLE IF EXISTS lane_tmp",
    "SELECT GET_LOCK('lane', 0)",
    "SELECT RELEASE_LOCK('lane')",
    "/*ms=slave*/SELECT @@server_id",
    "/*ms=master*/SELECT @@server_id",
    "/*ms=last_used*/SELECT @@server_id",
    "api:autocommit(False)",
    "api:autocommit(True)",
    "api:commit",
    "api:rollback",
    "api:begin",
)

# Runs of repeated statements between the others: a route is remembered on its first run.
STEPS = st.lists(
    st.one_of(
        st.sampled_from(VOCABULARY).map(lambda step: [step]),
        st.integers(2, 4).map(lambda n: [READ] * n),
        st.just(["SELECT @@server_id, COUNT(*) FROM lane_t"] * 2),
    ),
    min_size=1,
    max_size=10,
).map(lambda blocks: [step for block in blocks for step in block])

CONFIGS = {
    "warn, trx on master": {"session_state": "warn"},
    "sync, master_on_write": {"session_state": "sync", "master_on_write": True},
    "off, read-only trx on a slave": {"session_state": "off", "trx_stickiness": "on"},
}


@pytest.fixture(scope="module", autouse=True)
def table(sandbox: Sandbox) -> None:
    setup(sandbox, "CREATE TABLE IF NOT EXISTS lane_t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")


def run(conn: msplugin.Connection, steps: list[str]) -> list[tuple[str, str]]:
    """Each step's outcome: (where it ran or "-", what it raised or warned or "")."""
    cur = conn.cursor()
    trace = []
    for step in steps:
        before = conn.last_used
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if step.startswith("api:"):
                    call = step[4:]
                    if call.startswith("autocommit"):
                        conn.autocommit(call == "autocommit(True)")
                    else:
                        getattr(conn, call)()
                else:
                    cur.execute(step)
                    cur.fetchall()
                outcome = ""
            except msplugin.Error as exc:
                outcome = f"{type(exc).__name__}: {exc}"
        used = conn.last_used
        where = used.name if used is not None and used is not before else "-"
        if used is not None and step.startswith(("SELECT @@", "/*ms=")):
            where = used.name  # the same server again counts too
        # ResourceWarning: the garbage collector may finalize another test's socket here.
        said = [w for w in caught if not issubclass(w.category, ResourceWarning)]
        trace.append((where, outcome + "".join(f" [{w.message}]" for w in said)))
    return trace


@pytest.mark.parametrize("keys", CONFIGS.values(), ids=CONFIGS.keys())
def test_remembered_routes_route_every_sequence_as_the_full_path(
    make_config: Callable[..., str], keys: dict[str, Any]
) -> None:
    # roundrobin: both connections pick the same slaves in the same order.
    config = make_config(filters={"roundrobin": []}, **keys)
    laned: list[int] = []

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(STEPS)
    def compare(steps: list[str]) -> None:
        with msplugin.connect("sandbox", config=config) as full:
            full._core.remembers = False
            full._core.moved()
            expected = run(full, steps)
            expected_stats = full.stats()
        with msplugin.connect("sandbox", config=config) as fast:
            # A statement that ran without a call to route() took its remembered route.
            routed = full_routes(fast)
            cur = fast.cursor()
            execute = cur.execute

            def counting(query: str, args: Any = None) -> int:
                before = len(routed)
                try:
                    return execute(query, args)
                finally:
                    if len(routed) == before:
                        laned.append(1)

            cur.execute = counting  # type: ignore[method-assign]
            fast.cursor = lambda cursorclass=None: cur  # type: ignore[method-assign]
            assert run(fast, steps) == expected
            assert fast.stats() == expected_stats

    compare()
    assert len(laned) >= 30, f"only {len(laned)} statements took a remembered route"


def test_repeated_reads_are_remembered_and_count_as_routed_reads(sandbox: Sandbox) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as conn:
        first = server_id(conn)
        assert first in REPLICAS
        # The first statement changed the state (a server was used): decided again once.
        assert READ not in conn._core.memo
        assert server_id(conn) == first
        assert READ in conn._core.memo
        for _ in range(2):
            assert server_id(conn) == first  # random once: the same replica
        stats = conn.stats()
        assert stats["use_slave"] == 4
        assert stats["use_slave_guess"] == 4


def test_a_transaction_sent_as_sql_changes_the_state_routes_are_remembered_in(
    sandbox: Sandbox,
) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as conn:
        server_id(conn)
        server_id(conn)
        conn.cursor().execute("SET autocommit = 0")  # only the master's reply says so
        assert READ not in conn._core.memo
        assert server_id(conn) == 1  # trx_stickiness master: the open transaction's server
        conn.cursor().execute("SET autocommit = 1")
        assert server_id(conn) in REPLICAS


def test_switching_the_routing_log_on_logs_remembered_reads(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as conn:
        server_id(conn)
        server_id(conn)
        assert READ in conn._core.memo
        caplog.set_level(logging.DEBUG, logger="msplugin.routing")
        server_id(conn)
        assert [r.getMessage() for r in caplog.records] == [
            f"{READ} -> {conn.last_used.name}: {conn.explain(READ).reason}"  # type: ignore[union-attr]
        ]


def test_a_server_marked_down_sends_remembered_reads_through_routing(sandbox: Sandbox) -> None:
    """random once picked a slave; while it is down (quarantined) reads go to the other one,
    exactly as without remembered routes, and stay there afterwards (the new pick is kept)."""
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as conn:
        routed = full_routes(conn)
        server_id(conn)
        server_id(conn)
        first = conn.last_used
        assert first is not None and READ in conn._core.memo
        key = conn._backends.by_name[first.name].address
        health.down[key] = "test: marked down"
        try:
            other = server_id(conn)
            assert other in REPLICAS
            assert conn.last_used is not None and conn.last_used.name != first.name
            assert len(routed) == 3  # the full path while a server is down
        finally:
            health.down.pop(key, None)
        assert server_id(conn) == other
        assert server_id(conn) == other
        assert len(routed) == 3  # remembered again, with the new pick


def test_a_quarantined_server_of_another_group_keeps_routes_remembered(
    make_config: Callable[..., str],
) -> None:
    """Only this group's servers matter: a server another topology of the process lost does
    not send every read of this one through routing, and the remembered pick is the full
    path's."""
    with msplugin.connect("sandbox", config=make_config(filters={"roundrobin": []})) as conn:
        routed = full_routes(conn)
        assert [server_id(conn) for _ in range(2)] == [2, 3]
        elsewhere = ("192.0.2.1", 3306, "")
        health.down[elsewhere] = "test: another group's server"
        try:
            before = len(routed)
            assert [server_id(conn) for _ in range(4)] == [2, 3, 2, 3]
            assert len(routed) == before  # every one took its remembered route
        finally:
            health.down.pop(elsewhere, None)
