"""Optimistic transactions on the sandbox: unmodified SQLAlchemy ORM code with
trx_stickiness "optimistic", a real conflict, and concurrent read-modify-write increments."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from live import PRIMARY
from sqlalchemy import Engine, String, create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column
from test_pymysql_surface import master_params
from test_sqlalchemy import Base, make_url

import msplugin
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

THREADS, INCREMENTS = 4, 50


class Item(Base):
    __tablename__ = "opt_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class Counter(Base):
    __tablename__ = "opt_counter"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int]


def _engine(sandbox: Sandbox, tmp_path: Path, **kwargs: Any) -> Engine:
    url = make_url(
        sandbox,
        tmp_path,
        trx_stickiness="optimistic",
        filters={"quality_of_service": {"session_consistency": 1}},
    )
    return create_engine(url, **kwargs)


@pytest.fixture
def engine(sandbox: Sandbox, tmp_path: Path) -> Iterator[Engine]:
    eng = _engine(sandbox, tmp_path, pool_size=1, max_overflow=0)
    Base.metadata.create_all(eng)
    with Session(eng) as s:
        s.execute(text("DELETE FROM opt_item"))
        s.execute(text("DELETE FROM opt_counter"))
        s.add_all([Item(id=i, name=f"item {i}") for i in range(1, 11)])
        s.add(Counter(id=1, value=0))
        s.commit()
    sandbox.wait_replicated()
    yield eng
    eng.dispose()


def _facade(eng: Engine) -> msplugin.Connection:
    with eng.connect() as c:
        facade = c.connection.dbapi_connection
        assert isinstance(facade, msplugin.Connection)
        return facade


def test_an_unmodified_orm_app_reads_on_replicas(engine: Engine) -> None:
    """Session(engine), autobegin, reads, commit(): the read-only units run on replicas."""
    facade = _facade(engine)
    before = facade.stats()
    units = 50
    servers = []
    for i in range(units):
        with Session(engine) as s:
            item = s.get(Item, i % 10 + 1)
            assert item is not None and item.name == f"item {i % 10 + 1}"
            assert len(s.scalars(select(Item).order_by(Item.id)).all()) == 10
            servers.append(facade.last_used)
            s.commit()
    after = facade.stats()
    on_replicas = (
        after["optimistic_completed_on_replica"] - before["optimistic_completed_on_replica"]
    )
    print(f"\nread-only units on replicas: {on_replicas} of {units}")
    assert on_replicas / units >= 0.8, after
    assert all(info is not None and info.role == "slave" for info in servers)
    assert after["optimistic_replayed"] == before["optimistic_replayed"]


def test_a_unit_that_writes_moves_to_the_master_and_commits_there(
    engine: Engine, sandbox: Sandbox
) -> None:
    facade = _facade(engine)
    before = facade.stats()
    with Session(engine) as s:
        item = s.get(Item, 3)
        assert item is not None
        assert facade.last_used is not None and facade.last_used.role == "slave"
        item.name = "renamed"
        s.commit()
    after = facade.stats()
    assert after["optimistic_replayed"] - before["optimistic_replayed"] == 1
    with pymysql.connect(**master_params(sandbox)) as direct, direct.cursor() as cur:
        cur.execute("SELECT name FROM opt_item WHERE id = 3")
        assert cur.fetchone() == ("renamed",)


def test_a_row_changed_on_the_master_after_the_replica_read_is_a_conflict(
    engine: Engine, sandbox: Sandbox
) -> None:
    facade = _facade(engine)
    with Session(engine) as s:
        item = s.get(Item, 5)
        assert item is not None and item.name == "item 5"
        # Someone else changes the row; the replica has it too (it is no lag).
        with pymysql.connect(**master_params(sandbox)) as direct:
            with direct.cursor() as cur:
                cur.execute("UPDATE opt_item SET name = 'theirs' WHERE id = 5")
            direct.commit()
        sandbox.wait_replicated()
        item.name = "mine"
        with pytest.raises(OperationalError) as caught:
            s.commit()
        orig = caught.value.orig
        assert isinstance(orig, msplugin.OptimisticConflict)
        assert orig.args[0] == 1213 and orig.sqlstate == "40001"
        s.rollback()
    assert facade.stats()["optimistic_conflicts"] >= 1
    # Nothing of the conflicting unit was written, and the connection works.
    with Session(engine) as s:
        assert s.get(Item, 5).name == "theirs"  # type: ignore[union-attr]
        s.commit()


def _increment(engine: Engine, retries: list[int], errors: list[BaseException]) -> None:
    try:
        for _ in range(INCREMENTS):
            for attempt in range(200):
                try:
                    with Session(engine) as s, s.begin():
                        counter = s.get(Counter, 1)
                        assert counter is not None
                        counter.value += 1
                    break
                except OperationalError as exc:
                    if exc.orig is None or exc.orig.args[0] != 1213:
                        raise
                    retries.append(attempt)
            else:
                raise AssertionError("200 attempts without a commit")
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_concurrent_orm_increments_lose_and_duplicate_nothing(
    sandbox: Sandbox, tmp_path: Path, engine: Engine
) -> None:
    """4 threads x 50 read-modify-write increments of one row through the ORM, retrying on
    1213 (OptimisticConflict, or the master's own deadlock): exactly 200. SERIALIZABLE makes
    the ORM's plain read a locking one on the master, as a read-modify-write needs there too."""
    eng = _engine(sandbox, tmp_path, isolation_level="SERIALIZABLE", pool_size=THREADS)
    retries: list[int] = []
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_increment, args=(eng, retries, errors)) for _ in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    stats = msplugin.get_stats()
    eng.dispose()
    with pymysql.connect(**master_params(sandbox)) as direct, direct.cursor() as cur:
        cur.execute("SELECT value FROM opt_counter WHERE id = 1")
        assert cur.fetchone() == (THREADS * INCREMENTS,)
    assert stats["optimistic_replayed"] >= THREADS * INCREMENTS
    print(f"\nincrements: {THREADS * INCREMENTS}, retries: {len(retries)}")


def test_explain_and_the_plain_dbapi_follow_the_same_rules(
    engine: Engine, make_config: Callable[..., str]
) -> None:
    config = make_config(trx_stickiness="optimistic")
    with msplugin.connect("sandbox", config=config, autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute("SELECT @@server_id")  # server-dependent: the transaction starts on the master
        assert cur.fetchone() == (PRIMARY,)
        conn.commit()
        cur.execute("SELECT name FROM opt_item WHERE id = 1")
        assert conn.last_used is not None and conn.last_used.role == "slave"
        e = conn.explain("SELECT @@server_id")
        assert e.role == "master" and "@@SERVER_ID differs by server" in e.reason
        cur.execute("SELECT @@server_id")
        assert cur.fetchone() == (PRIMARY,)  # moved before it ran
        conn.rollback()
        cur.execute("SELECT name FROM opt_item WHERE id = 2")
        e = conn.explain("SELECT name FROM opt_item")
        assert e.role == "slave" and e.server in {"slave_0", "slave_1"}
        assert conn.stats()["optimistic_replayed"] == 1


def test_begin_with_autocommit_on_starts_on_a_replica_and_a_write_is_atomic_on_the_master(
    engine: Engine, sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    """The plain DB-API with autocommit on: BEGIN is held back, a read-only transaction
    runs on a replica (READ ONLY there), and one that writes runs on the master inside the
    application's transaction: its ROLLBACK undoes the write."""
    config = make_config(trx_stickiness="optimistic")
    with msplugin.connect("sandbox", config=config, autocommit=True) as conn:
        cur = conn.cursor()
        conn.begin()
        cur.execute("SELECT name FROM opt_item WHERE id = 1")
        assert cur.fetchone() == ("item 1",)
        replica = conn.last_used
        assert replica is not None and replica.role == "slave"
        # The replica's transaction is open and read only (InnoDB's own view of it).
        node = next(n for n in sandbox.nodes if n.port == replica.port)
        session = conn._router.by_name[replica.name].conn
        assert session is not None
        with sandbox.admin(node) as direct, direct.cursor() as dcur:
            dcur.execute(
                "SELECT trx_is_read_only FROM information_schema.innodb_trx"
                " WHERE trx_mysql_thread_id = %s",
                (session.thread_id(),),
            )
            assert dcur.fetchall() == ((1,),)
        conn.rollback()
        cur.execute("START TRANSACTION")
        cur.execute("SELECT name FROM opt_item WHERE id = 2")
        assert conn.last_used.role == "slave"
        cur.execute("UPDATE opt_item SET name = 'undone' WHERE id = 2")
        assert conn.last_used.role == "master"
        cur.execute("ROLLBACK")
        cur.execute("SELECT /*ms=master*/ name FROM opt_item WHERE id = 2")
        stats = conn.stats()
    with pymysql.connect(**master_params(sandbox)) as direct, direct.cursor() as cur:
        cur.execute("SELECT name FROM opt_item WHERE id = 2")
        assert cur.fetchone() == ("item 2",)
    assert stats["optimistic_started"] == 2 and stats["optimistic_replayed"] == 1
