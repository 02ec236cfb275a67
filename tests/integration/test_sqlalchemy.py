"""The mysql+msplugin SQLAlchemy dialect on the sandbox: Core, ORM, transactions, read-only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import PRIMARY, REPLICAS, setup
from sqlalchemy import URL, Engine, String, create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import msplugin
from msplugin.dialect import read_only
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


class Base(DeclarativeBase):
    pass


class Beer(Base):
    __tablename__ = "sa_beer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


def make_url(sandbox: Sandbox, tmp_path: Path, **group_keys: object) -> URL:
    """The sandbox group without credentials in the file: the URL carries them."""
    data = json.loads(sandbox.config_path.read_text())
    group = data["sandbox"]
    servers = [*group["master"].values(), *group["slave"].values()]
    user, password, database = servers[0]["user"], servers[0]["password"], servers[0]["db"]
    for server in servers:
        del server["user"], server["password"], server["db"]
    group.update(group_keys)
    path = tmp_path / f"sa{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(data))
    return URL.create(
        "mysql+msplugin",
        username=user,
        password=password,
        host="sandbox",
        database=database,
        query={"config": str(path)},
    )


@pytest.fixture
def url(sandbox: Sandbox, tmp_path: Path) -> URL:
    return make_url(sandbox, tmp_path, filters={"quality_of_service": {"session_consistency": 1}})


@pytest.fixture
def engine(url: URL) -> Iterator[Engine]:
    eng = create_engine(url)
    Base.metadata.create_all(eng)
    yield eng
    with eng.begin() as c:
        c.execute(text("DELETE FROM sa_beer"))
    eng.dispose()


def server_id(c: object) -> int:
    return int(c.execute(text("SELECT @@server_id")).scalar_one())  # type: ignore[attr-defined]


def test_the_url_string_form_reaches_the_group(url: URL) -> None:
    eng = create_engine(url.render_as_string(hide_password=False))
    with eng.connect() as c:
        assert isinstance(c.connection.dbapi_connection, msplugin.Connection)
        assert c.execute(text("SELECT DATABASE()")).scalar_one() == url.database
    eng.dispose()


def test_reads_split_under_autocommit_and_see_the_writes(engine: Engine) -> None:
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")
    with auto.connect() as c:
        assert {server_id(c) for _ in range(6)} <= REPLICAS
        for i in range(1, 21):
            c.execute(text("INSERT INTO sa_beer (id, name) VALUES (:i, 'x')"), {"i": i})
            assert c.execute(text("SELECT COUNT(*) FROM sa_beer")).scalar_one() == i
        facade = c.connection.dbapi_connection
        assert isinstance(facade, msplugin.Connection)
        stats = facade.stats()
        assert stats["use_master"] >= 20 and stats["use_slave"] >= 6


def test_transactions_stay_on_the_master_and_roll_back(engine: Engine) -> None:
    with engine.begin() as c:
        assert server_id(c) == PRIMARY
        c.execute(text("INSERT INTO sa_beer (id, name) VALUES (1, 'kept')"))
        assert server_id(c) == PRIMARY
        assert c.execute(text("SELECT name FROM sa_beer")).scalar_one() == "kept"
    with pytest.raises(RuntimeError), engine.begin() as c:
        c.execute(text("INSERT INTO sa_beer (id, name) VALUES (2, 'rolled back')"))
        raise RuntimeError
    with engine.connect() as c:
        assert c.execute(text("SELECT id FROM sa_beer")).scalars().all() == [1]


def test_orm_round_trip(engine: Engine, sandbox: Sandbox) -> None:
    with Session(engine) as s:
        s.add_all([Beer(id=10, name="Redback"), Beer(id=11, name="XXXX")])
        s.commit()
    with Session(engine) as s:
        assert [b.name for b in s.scalars(select(Beer).order_by(Beer.id))] == ["Redback", "XXXX"]
        beer = s.get(Beer, 11)
        assert beer is not None
        beer.name = "Fourex"
        assert server_id(s) == PRIMARY  # the unit of work runs on the master
        s.commit()
    # Once the replicas have it, an AUTOCOMMIT session reads the change from a replica.
    sandbox.wait_replicated()
    with Session(engine.execution_options(isolation_level="AUTOCOMMIT")) as s:
        assert s.scalars(select(Beer.name).where(Beer.id == 11)).one() == "Fourex"
        facade = s.connection().connection.dbapi_connection
        assert isinstance(facade, msplugin.Connection)
        assert facade.last_used is not None and facade.last_used.role == "slave"


def test_read_only_transactions_run_on_one_slave(
    sandbox: Sandbox, tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    setup(sandbox, "CREATE TABLE IF NOT EXISTS sa_ro (i INT)")
    eng = create_engine(make_url(sandbox, tmp_path, trx_stickiness="on"), pool_size=1)
    with read_only(eng) as ro:
        ids = {server_id(ro) for _ in range(5)}
        # What MANUAL 21 says a write inside read_only() gets: the replica refuses it.
        with pytest.raises(OperationalError, match=r"1290.*--read-only option"):
            ro.execute(text("INSERT INTO sa_ro (i) VALUES (1)"))
        with pytest.raises(OperationalError, match=r"1792.*READ ONLY transaction"):
            ro.execute(text("CREATE TEMPORARY TABLE t (i INT)"))
        facade = ro.connection.dbapi_connection
        assert isinstance(facade, msplugin.Connection)
        assert facade.stats()["trx_read_only_slave"] == 1
    assert len(ids) == 1 and ids <= REPLICAS
    with eng.begin() as c:  # the same pooled connection, a normal transaction: the master
        assert c.connection.dbapi_connection is facade
        assert server_id(c) == PRIMARY
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        assert server_id(c) in REPLICAS
    assert not [w for w in recwarn if issubclass(w.category, msplugin.StateDivergenceWarning)]
    eng.dispose()


def test_an_isolation_level_applies_to_every_backend(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="READ COMMITTED") as c:
        level = "SELECT @@server_id, @@tx_isolation"
        assert c.execute(text(level)).one() == (PRIMARY, "READ-COMMITTED")
        c.commit()
        facade = c.connection.dbapi_connection
        assert isinstance(facade, msplugin.Connection)
        facade.autocommit(True)  # reads go to a replica again, opened after the change
        cur = facade.cursor()
        cur.execute(level)
        replica, isolation = cur.fetchone()
        assert replica in REPLICAS and isolation == "READ-COMMITTED"


def test_creator_alternative(sandbox: Sandbox) -> None:
    eng = create_engine(
        "mysql+pymysql://",
        creator=lambda: msplugin.connect(
            "sandbox", config=str(sandbox.config_path), autocommit=False
        ),
    )
    with eng.begin() as c:
        assert server_id(c) == PRIMARY
    # The PyMySQL dialect sends SET NAMES on connect, which msplugin routes to the master:
    # the default session_state "warn" says so at the first read on a replica. The
    # mysql+msplugin dialect does not send it (see the test above: no warning).
    with (
        pytest.warns(msplugin.StateDivergenceWarning, match="SET NAMES"),
        eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c,
    ):
        assert server_id(c) in REPLICAS
    eng.dispose()


def test_stream_results_reads_through_a_server_side_cursor(engine: Engine) -> None:
    """stream_results: the facade's cursor runs PyMySQL's SSCursor (SQLAlchemy's own suite
    cannot tell, see test_sqlalchemy_suite.py), and rows arrive as they are fetched."""
    with engine.connect() as c:
        result = c.execution_options(stream_results=True).execute(
            text("SELECT seq FROM seq_1_to_1000")
        )
        cursor = result.cursor
        assert isinstance(cursor, msplugin.Cursor)
        assert repr(cursor).startswith("<msplugin.Cursor SSCursor ")
        assert [row[0] for row in result.fetchmany(3)] == [1, 2, 3]
        assert len(result.all()) == 997
