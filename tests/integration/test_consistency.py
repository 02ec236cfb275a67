"""Service levels on the live topology: strong, session (read-your-writes via GTIDs), age."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pymysql.cursors
import pytest
from live import PRIMARY, REPLICAS, server_id, setup

import msplugin
from msplugin.monitor import monitor
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def table(sandbox: Sandbox) -> None:
    setup(
        sandbox,
        "CREATE TABLE IF NOT EXISTS ryw (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
        "CREATE OR REPLACE PROCEDURE ryw_add(IN x INT) BEGIN INSERT INTO ryw (v) VALUES (x);"
        " SELECT x; END",
    )


@pytest.fixture(autouse=True)
def fresh_monitor() -> Iterator[None]:
    yield
    monitor.stop()


def test_strong_sends_everything_to_the_master(make_config: Callable[..., str]) -> None:
    config = make_config(filters={"quality_of_service": {"strong_consistency": 1}})
    with msplugin.connect("sandbox", config=config) as c:
        assert {server_id(c) for _ in range(5)} == {PRIMARY}
        assert c.stats()["use_master_qos_strong"] == 5
        assert server_id(c, "/*ms=eventual*/SELECT @@server_id") in REPLICAS


def test_strong_hint_applies_to_one_statement(sandbox: Sandbox) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        assert server_id(c, "/*ms=strong*/SELECT @@server_id") == PRIMARY
        assert server_id(c) in REPLICAS


def write_then_read_loop(c: msplugin.Connection, n: int) -> tuple[int, int]:
    """Write a row, read it back at once; return (stale reads, reads served by replicas)."""
    cur = c.cursor()
    stale = replica = 0
    for i in range(n):
        cur.execute("INSERT INTO ryw (v) VALUES (%s)", (i,))
        new_id = cur.lastrowid
        cur.execute("SELECT v FROM ryw WHERE id = %s", (new_id,))
        if cur.fetchone() != (i,):
            stale += 1
        used = c.last_used
        assert used is not None
        replica += used.role == "slave"
    return stale, replica


def test_session_consistency_never_reads_stale(make_config: Callable[..., str]) -> None:
    config = make_config(filters={"quality_of_service": {"session_consistency": 1}, "random": {}})
    with msplugin.connect("sandbox", config=config) as c:
        stale, replica = write_then_read_loop(c, 2000)
        stats = c.stats()
    consistency = {k: v for k, v in stats.items() if k.startswith(("gtid", "use_master_session"))}
    print(f"\n2000 write-then-read: {stale} stale, {replica} on replicas; {consistency}")
    assert stale == 0
    assert stats["gtid_tracked"] == 2000
    assert stats["gtid_checks"] + stats["use_master_session"] + stats["gtid_replica_known"] >= 2000


def test_eventual_reads_right_after_writes_can_be_stale_which_is_why_session_exists(
    make_config: Callable[..., str],
) -> None:
    # Not an assertion about msplugin's correctness but about the test: it must be able to
    # catch stale reads at all, or the zero above would prove nothing.
    with msplugin.connect("sandbox", config=make_config(filters=["random"])) as c:
        stale, replica = write_then_read_loop(c, 300)
    assert replica == 300 and stale > 0


def test_session_reads_after_replicas_caught_up_use_replicas(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    config = make_config(
        filters={"quality_of_service": {"session_consistency": 1}, "roundrobin": {}}
    )
    with msplugin.connect("sandbox", config=config) as c:
        cur = c.cursor()
        cur.execute("INSERT INTO ryw (v) VALUES (-1)")
        gtid = c.last_gtid()
        assert gtid is not None and gtid.startswith("0-1-")
        sandbox.wait_replicated()
        time.sleep(0.01)
        ids = [server_id(c) for _ in range(6)]
        assert set(ids) <= REPLICAS
        stats = c.stats()
        # One check; then the replica known to have the write serves the rest without one.
        assert (stats["gtid_checks"], stats["gtid_replica_known"], stats["gtid_check_failed"]) == (
            1,
            5,
            0,
        )
        cur.execute("INSERT INTO ryw (v) VALUES (-2)")  # a new GTID: a new check
        sandbox.wait_replicated()
        assert server_id(c) in REPLICAS and c.stats()["gtid_checks"] == 2


def test_runtime_session_level_and_carrying_a_gtid_across_connections(
    sandbox: Sandbox,
) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as writer:
        writer.set_qos("session")
        cur = writer.cursor()
        cur.execute("INSERT INTO ryw (v) VALUES (424242)")
        gtid = writer.last_gtid()
    assert gtid is not None
    # A later request, another connection: it must see the first one's write.
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as reader:
        reader.set_qos("session", gtid=gtid)
        cur = reader.cursor()
        cur.execute("SELECT COUNT(*) FROM ryw WHERE v = 424242")
        assert cur.fetchone() == (1,)
    with (
        msplugin.connect("sandbox", config=str(sandbox.config_path)) as c,
        pytest.raises(msplugin.ProgrammingError),
    ):
        c.set_qos("session", gtid="not a gtid; DROP TABLE ryw")


def test_session_without_a_known_gtid_reads_from_the_master(sandbox: Sandbox) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        c.cursor().execute("INSERT INTO ryw (v) VALUES (7)")  # written before session was asked
        c.set_qos("session")
        assert server_id(c) == PRIMARY
        assert c.stats()["use_master_session"] == 1


def test_a_write_whose_gtid_comes_after_result_sets_sends_session_reads_to_the_master(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    config = make_config(filters={"quality_of_service": {"session_consistency": 1}})
    with msplugin.connect("sandbox", config=config) as c:
        cur = c.cursor()
        cur.execute("INSERT INTO ryw (v) VALUES (-3)")
        sandbox.wait_replicated()
        assert server_id(c) in REPLICAS  # the known GTID is on the replicas
        cur.callproc("ryw_add", (515151,))  # writes; its GTID is in an OK packet not read yet
        assert cur.fetchall() == ((515151,),)
        assert c.last_gtid() is None
        assert c.stats()["gtid_untracked"] == 1
        cur.execute("SELECT @@server_id, COUNT(*) FROM ryw WHERE v = 515151")
        assert cur.fetchone() == (PRIMARY, 1)
        cur.execute("INSERT INTO ryw (v) VALUES (-4)")  # a GTID known again
        assert c.last_gtid() is not None
        sandbox.wait_replicated()
        assert server_id(c) in REPLICAS
        cur.execute("INSERT INTO ryw (v) VALUES (626262) RETURNING v")  # rows, no OK packet
        assert cur.fetchall() == ((626262,),)
        assert c.last_gtid() is None and c.stats()["gtid_untracked"] == 2
        cur.execute("SELECT @@server_id, COUNT(*) FROM ryw WHERE v = 626262")
        assert cur.fetchone() == (PRIMARY, 1)
        cur.execute("SHOW TABLES")  # a non-read with rows that writes nothing: no effect
        assert c.stats()["gtid_untracked"] == 2


def test_multi_statements_stay_refused_on_gtid_checked_replicas(
    make_config: Callable[..., str],
) -> None:
    config = make_config(filters={"quality_of_service": {"session_consistency": 1}})
    with msplugin.connect("sandbox", config=config) as c:
        with pytest.raises(msplugin.ProgrammingError, match="multi-statement strings need"):
            c.cursor().execute("/*ms=slave*/SELECT 1; SELECT 2")
        assert server_id(c) in REPLICAS


def test_age_avoids_a_replica_whose_sql_thread_stopped(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    config = make_config(
        filters={"quality_of_service": {"eventual_consistency": {"age": 5}}, "roundrobin": {}},
        replica_status_interval=0.2,
    )
    stopped = sandbox.replicas[0]
    with msplugin.connect("sandbox", config=config) as c:
        assert {server_id(c) for _ in range(4)} == REPLICAS
        with sandbox.admin(stopped) as admin, admin.cursor() as cur:
            cur.execute("STOP SLAVE SQL_THREAD")
        try:
            c.cursor().execute("INSERT INTO ryw (v) VALUES (1)")
            time.sleep(0.5)  # more than two refresh intervals
            assert {server_id(c) for _ in range(6)} == {3}, "reads must avoid the stopped replica"
            assert "within age" not in c.explain("SELECT 1").reason
        finally:
            with sandbox.admin(stopped) as admin, admin.cursor() as cur:
                cur.execute("START SLAVE SQL_THREAD")
        sandbox.wait_replicated()
        time.sleep(0.5)
        assert {server_id(c) for _ in range(4)} == REPLICAS, "the replica must come back"


def test_no_replica_within_age_falls_back_to_master_or_fails(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    for node in sandbox.replicas:
        with sandbox.admin(node) as admin, admin.cursor() as cur:
            cur.execute("STOP SLAVE SQL_THREAD")
    try:
        with msplugin.connect("sandbox", config=make_config(replica_status_interval=0.2)) as c:
            c.set_qos("eventual", age=1)
            assert server_id(c) == PRIMARY
            assert c.stats()["use_master_age"] == 1
        with msplugin.connect("sandbox", config=make_config(failover="disabled")) as c:
            c.set_qos("eventual", age=1)
            with pytest.raises(msplugin.NoBackendAvailable, match="no replica within age 1 s"):
                server_id(c)
    finally:
        for node in sandbox.replicas:
            with sandbox.admin(node) as admin, admin.cursor() as cur:
                cur.execute("START SLAVE SQL_THREAD")
        sandbox.wait_replicated()


def test_mysqlnd_ms_gtid_injection_keys(make_config: Callable[..., str]) -> None:
    # A config ported from mysqlnd_ms: its own SQL to fetch and check GTIDs. The % in the
    # check must survive PyMySQL's interpolation of the read's own parameters.
    config = make_config(
        global_transaction_id_injection={
            "fetch_last_gtid": "SELECT @@last_gtid",
            "check_for_gtid": "SELECT 1 FROM DUAL WHERE '%' = '%' AND MASTER_GTID_WAIT(#GTID, 0) = 0",
            "report_error": True,
        }
    )
    with msplugin.connect("sandbox", config=config) as c:
        stale, _replica = write_then_read_loop(c, 200)
        stats = c.stats()
        assert c.last_gtid() is not None
    assert stale == 0
    assert stats["gtid_fetch"] == 200 and stats["gtid_tracked"] == 200


def test_injection_errors_are_reported_or_logged(make_config: Callable[..., str]) -> None:
    bad = {"fetch_last_gtid": "SELECT no_such_column FROM DUAL"}
    config = make_config(global_transaction_id_injection=bad)
    with msplugin.connect("sandbox", config=config) as c, pytest.raises(msplugin.OperationalError):
        c.cursor().execute("INSERT INTO ryw (v) VALUES (1)")
    quiet = {**bad, "report_error": False}
    with msplugin.connect(
        "sandbox", config=make_config(global_transaction_id_injection=quiet)
    ) as c:
        c.cursor().execute("INSERT INTO ryw (v) VALUES (1)")
        assert server_id(c) == PRIMARY  # GTID unknown: the session read goes to the master


FUTURE = "0-1-999999999"  # a GTID no replica has: its check fails, the master answers


def first(row: object) -> object:
    """The first column of a row of any cursor class."""
    assert row is not None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]  # type: ignore[index]


@pytest.mark.parametrize(
    "cursorclass",
    [
        pymysql.cursors.Cursor,
        pymysql.cursors.DictCursor,
        pymysql.cursors.SSCursor,
        pymysql.cursors.SSDictCursor,
    ],
    ids=lambda c: c.__name__,
)
@pytest.mark.parametrize("checked", ["in the read's packet", "as a statement of its own"])
def test_every_cursor_class_works_on_every_session_path(
    sandbox: Sandbox,
    make_config: Callable[..., str],
    cursorclass: type[pymysql.cursors.Cursor],
    checked: str,
) -> None:
    # A group configured for session consistency opens replicas with multi-statements (the
    # check travels with the read); set_qos("session") at run time sends it on its own.
    if checked == "in the read's packet":
        config = make_config(filters={"quality_of_service": {"session_consistency": 1}})
    else:
        config = str(sandbox.config_path)
    with msplugin.connect("sandbox", config=config, cursorclass=cursorclass) as c:
        cur = c.cursor()
        cur.execute("SELECT v FROM ryw LIMIT 1")  # eventual or session, nothing written yet
        cur.fetchall()
        c.set_qos("session")
        cur.execute("INSERT INTO ryw (v) VALUES (%s)", (4242,))
        new_id = cur.lastrowid
        sandbox.wait_replicated()
        cur.execute("SELECT v, @@server_id FROM ryw WHERE id = %s", (new_id,))
        row = cur.fetchone()
        assert first(row) == 4242 and c.last_used is not None
        assert c.last_used.role == "slave"  # the check passed on the replica
        assert cur.fetchone() is None
        c.set_qos("session", gtid=FUTURE)
        cur.execute("SELECT v FROM ryw WHERE id = %s", (new_id,))
        assert [first(r) for r in cur.fetchall()] == [4242]
        assert c.last_used is not None and c.last_used.role == "master"  # the check failed
        assert c.stats()["gtid_check_failed"] == 1
        cur.executemany("SELECT v FROM ryw WHERE id = %s", [(new_id,)])
        assert [first(r) for r in cur.fetchall()] == [4242]


def test_create_table_then_select_from_it_on_fresh_connections(
    make_config: Callable[..., str],
) -> None:
    """A replica that has not the table yet fails the read that follows the check in the same
    packet; the read runs on the master instead of the replica's error reaching the caller."""
    config = make_config(filters={"quality_of_service": {"session_consistency": 1}})
    errors = []
    for i in range(40):
        with msplugin.connect("sandbox", config=config) as c:
            cur = c.cursor()
            try:
                cur.execute(f"CREATE TABLE fresh_{i} (a INT)")
                cur.execute(f"SELECT COUNT(*) FROM fresh_{i}")
                assert cur.fetchone() == (0,)
            except msplugin.Error as exc:
                errors.append(f"{i}: {exc}")
            finally:
                cur.execute(f"DROP TABLE IF EXISTS fresh_{i}")
    assert errors == []


def test_a_read_of_a_table_the_replicas_lack_yet_runs_on_the_master(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    """The deterministic form of the test above: with the replicas' SQL threads stopped, every
    check fails and every read in its packet fails on the replica (no such table)."""
    config = make_config(filters={"quality_of_service": {"session_consistency": 1}})

    def sql_threads(action: str) -> None:
        for node in sandbox.replicas:
            with sandbox.admin(node) as admin, admin.cursor() as cur:
                cur.execute(f"{action} SLAVE SQL_THREAD")

    sql_threads("STOP")
    try:
        for i in range(3):
            with msplugin.connect("sandbox", config=config) as c:
                cur = c.cursor()
                cur.execute(f"CREATE TABLE lagging_{i} (a INT)")
                cur.execute(f"SELECT COUNT(*) FROM lagging_{i}")
                assert cur.fetchone() == (0,)
                assert c.last_used is not None and c.last_used.role == "master"
                assert c.stats()["gtid_check_failed"] == 1
    finally:
        sql_threads("START")
        with msplugin.connect("sandbox", config=config) as c:
            for i in range(3):
                c.cursor().execute(f"DROP TABLE IF EXISTS lagging_{i}")
        sandbox.wait_replicated()
