"""msplugin.django on the sandbox: an unmodified Django connection reads from replicas, its
session set-up reaches every server, atomic() follows trx_stickiness, and the read-your-writes
middleware and task helper carry a write's GTID to the next request or task.

Django's settings are configured once per process (django.conf.settings), here for the
session's sandbox; the views are plain functions called through the middleware."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest
from live import PRIMARY

from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dj(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Django configured for the sandbox: "default" over msplugin.django (optimistic
    transactions), "pinned" the same group with trx_stickiness "master"."""
    from django.conf import settings

    data = json.loads(sandbox.config_path.read_text())
    group = data["sandbox"]
    group["trx_stickiness"] = "optimistic"
    data["master_only"] = {**group, "trx_stickiness": "master"}
    config = tmp_path_factory.mktemp("django") / "msplugin.json"
    config.write_text(json.dumps(data))
    master = group["master"]["master_0"]
    common = {
        "ENGINE": "msplugin.django",
        "NAME": master["db"],
        "USER": master["user"],
        "PASSWORD": master["password"],
        "OPTIONS": {"config": str(config)},
    }
    if not settings.configured:
        settings.configure(
            DATABASES={
                "default": {**common, "HOST": "sandbox"},
                "pinned": {**common, "HOST": "master_only"},
            },
            INSTALLED_APPS=[],
            USE_TZ=True,
            SECRET_KEY="msplugin tests",
            MSPLUGIN_GTID_MAX_AGE=60,
        )
        django.setup()
    from django.db import connections

    with connections["default"].cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS dj_note (id INT PRIMARY KEY, body VARCHAR(40))")
        cur.execute("DELETE FROM dj_note")
    sandbox.wait_replicated()
    yield connections
    connections.close_all()


def _server_id(connections: Any, sql: str = "SELECT @@server_id", alias: str = "default") -> int:
    with connections[alias].cursor() as cur:
        cur.execute(sql)
        return int(cur.fetchone()[0])


def test_reads_go_to_replicas_writes_to_the_master(dj: Any) -> None:
    assert _server_id(dj) != PRIMARY
    assert _server_id(dj, "/*ms=master*/SELECT @@server_id") == PRIMARY
    with dj["default"].cursor() as cur:
        cur.execute("INSERT INTO dj_note VALUES (1, 'one')")
    assert dj["default"].connection.last_used.role == "master"


def test_djangos_session_setup_reaches_every_server(dj: Any) -> None:
    # Django's default isolation level (READ COMMITTED) is not the servers' (REPEATABLE
    # READ): sent as one SET it would reach the master only.
    dj["default"].ensure_connection()
    conn = dj["default"].connection
    with dj["default"].cursor() as cur:
        for hint in ("/*ms=master*/", "", ""):  # the master and both replicas (round robin)
            cur.execute(f"{hint}SELECT @@session.tx_isolation, @@server_id")
            level, _ = cur.fetchone()
            assert level == "READ-COMMITTED", conn.last_used
    assert conn.stats()["use_slave"] >= 2


def test_an_atomic_block_that_only_reads_runs_on_a_replica(dj: Any, sandbox: Sandbox) -> None:
    from django.db import transaction

    # The replicas have the earlier tests' rows: the replayed read below must find on the
    # master what it found on the replica (else the block ends in OptimisticConflict, as it
    # should with a replica behind).
    sandbox.wait_replicated()
    conn = dj["default"]
    conn.ensure_connection()
    before = conn.connection.stats()
    with transaction.atomic(), conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM dj_note")
        cur.fetchall()
        assert conn.connection.last_used.role == "slave"
    with transaction.atomic(), conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM dj_note")
        cur.execute("REPLACE INTO dj_note VALUES (2, 'two')")  # moves to the master
        assert conn.connection.last_used.role == "master"
    after = conn.connection.stats()
    assert after["optimistic_completed_on_replica"] - before["optimistic_completed_on_replica"] == 1
    assert after["optimistic_replayed"] - before["optimistic_replayed"] == 1
    # trx_stickiness "master": the whole block on the master.
    with transaction.atomic(using="pinned"):
        assert _server_id(dj, "SELECT @@server_id + 0", alias="pinned") == PRIMARY


def _views(dj: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    from django.http import HttpResponse

    def write(request: Any) -> Any:
        with dj["default"].cursor() as cur:
            cur.execute("INSERT INTO dj_note VALUES (%s, 'x')", (int(request.GET["id"]),))
        return HttpResponse("ok")

    def read(request: Any) -> Any:
        with dj["default"].cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM dj_note WHERE id = %s", (int(request.GET["id"]),))
            return HttpResponse(str(cur.fetchone()[0]))

    return write, read


def _serve(dj: Any, view: Callable[[Any], Any], request: Any) -> Any:
    """*request* through the middleware to *view*; the connection is closed after it, as
    Django closes it at the end of each request (CONN_MAX_AGE 0)."""
    from msplugin.django.middleware import ReadYourWritesMiddleware

    try:
        return ReadYourWritesMiddleware(view)(request)
    finally:
        dj["default"].close()


def _stopped(sandbox: Sandbox, action: str) -> None:
    for node in sandbox.replicas:
        with sandbox.admin(node) as admin, admin.cursor() as cur:
            cur.execute(f"{action} SLAVE SQL_THREAD")


def test_the_middleware_carries_a_write_to_the_clients_next_request(
    dj: Any, sandbox: Sandbox
) -> None:
    from django.test import RequestFactory

    write, read = _views(dj)
    factory = RequestFactory()
    _stopped(sandbox, "STOP")  # the replicas apply nothing: any read there is stale
    try:
        response = _serve(dj, write, factory.get("/w", {"id": 10}))
        gtid = response.cookies["msplugin_gtid"].value
        assert gtid and response["X-Msplugin-Gtid"] == gtid
        # Another client (no cookie) reads a replica: the write is not there yet.
        other = _serve(dj, read, factory.get("/r", {"id": 10}))
        assert other.content == b"0" and "msplugin_gtid" not in other.cookies
        # The writer's next request carries the cookie: its read sees the write.
        request = factory.get("/r", {"id": 10})
        request.COOKIES["msplugin_gtid"] = gtid
        assert _serve(dj, read, request).content == b"1"
        # A header works the same; a malformed value is ignored.
        by_header = factory.get("/r", {"id": 10}, HTTP_X_MSPLUGIN_GTID=gtid)
        assert _serve(dj, read, by_header).content == b"1"
        junk = factory.get("/r", {"id": 10}, HTTP_X_MSPLUGIN_GTID="0-1-x; DROP")
        assert _serve(dj, read, junk).content == b"0"
    finally:
        _stopped(sandbox, "START")
    sandbox.wait_replicated()
    request = factory.get("/r", {"id": 10})
    request.COOKIES["msplugin_gtid"] = gtid
    assert _serve(dj, read, request).content == b"1"


def test_the_middleware_restores_a_persistent_connections_service_level(dj: Any) -> None:
    from django.test import RequestFactory

    from msplugin.django.middleware import ReadYourWritesMiddleware

    write, read = _views(dj)
    request = RequestFactory().get("/w", {"id": 12})
    response = ReadYourWritesMiddleware(write)(request)  # the connection stays open
    conn = dj["default"].connection
    assert conn.service_level == ("eventual", None)
    assert response.cookies["msplugin_gtid"].value == conn.last_gtid()
    # A later request on the same connection that writes nothing sends no cookie.
    again = ReadYourWritesMiddleware(read)(RequestFactory().get("/r", {"id": 12}))
    assert again.content == b"1" and "msplugin_gtid" not in again.cookies


def test_a_task_sees_the_write_of_the_request_that_queued_it(dj: Any, sandbox: Sandbox) -> None:
    from msplugin.django import last_gtid, read_your_writes

    _stopped(sandbox, "STOP")
    try:
        with dj["default"].cursor() as cur:
            cur.execute("INSERT INTO dj_note VALUES (11, 'task')")
        gtid = last_gtid()
        dj["default"].close()  # the task runs on another connection (another process)
        with read_your_writes(gtid), dj["default"].cursor() as cur:
            cur.execute("SELECT body FROM dj_note WHERE id = 11")
            assert cur.fetchone() == ("task",)
        assert dj["default"].connection.service_level == ("eventual", None)
        with read_your_writes(None), dj["default"].cursor() as cur:  # nothing to wait for
            cur.execute("SELECT COUNT(*) FROM dj_note WHERE id = 11")
            assert cur.fetchone() == (0,)  # a stopped replica: stale, as eventual allows
    finally:
        _stopped(sandbox, "START")
        sandbox.wait_replicated()


def test_a_misconfigured_database_says_what_is_wrong(dj: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from msplugin.django.base import DatabaseWrapper

    settings_dict = dict(dj["default"].settings_dict)
    for change, message in (
        ({"HOST": ""}, "HOST must name the msplugin group"),
        ({"PORT": "3306"}, "PORT must be empty"),
    ):
        wrapper = DatabaseWrapper({**settings_dict, **change}, alias="bad")
        with pytest.raises(ImproperlyConfigured, match=message):
            wrapper.get_connection_params()
