"""The least_connections, fastest_response, user, user_multi and node_groups filters, live."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import live
import pytest
from live import PRIMARY, server_id

import msplugin

pytestmark = pytest.mark.integration


def test_least_connections_spreads_held_connections(make_config: Callable[..., str]) -> None:
    cfg = make_config(filters=["least_connections"], pooling={"enabled": False})
    conns = [msplugin.connect("sandbox", config=cfg) for _ in range(6)]
    try:
        ids = [server_id(c) for c in conns]  # each holds its replica while the next one picks
        assert ids.count(2) == 3 and ids.count(3) == 3
    finally:
        for c in conns:
            c.close()


def test_fastest_response_prefers_the_faster_replica(make_config: Callable[..., str]) -> None:
    from msplugin import filters

    cfg = make_config(filters=["fastest_response"])
    with msplugin.connect("sandbox", config=cfg) as c:
        first = {server_id(c) for _ in range(2)}
        assert first == {2, 3}  # both measured first
        slow = c._backends.by_name["slave_0"].address
        filters.record_latency(slow, 1.0)  # as if slave_0 had answered in 1 s
        filters.record_latency(slow, 1.0)
        assert {server_id(c) for _ in range(20)} == {3}
        assert filters.latency(c._backends.by_name["slave_1"].address) is not None


def test_user_filter_from_json_sees_every_statement(make_config: Callable[..., str]) -> None:
    cfg = make_config(filters={"user": {"callback": "live:pick_last_slave"}})
    live.CALLS.clear()
    with msplugin.connect("sandbox", config=cfg) as c:
        assert server_id(c) == 3  # slave_1, the last slave
        cur = c.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS user_filter (a INT)")
        assert c.last_used is not None and c.last_used.role == "master"
    read, write = live.CALLS
    assert read == (
        "sandbox",
        "SELECT @@server_id",
        ["master_0"],
        ["slave_0", "slave_1"],
        None,
        False,
    )
    assert write[2:] == (["master_0"], [], "slave_1", False)  # a write gets no slaves


@pytest.mark.parametrize(
    ("answer", "message"),
    [("nowhere", "not one of the candidates"), (3, "expected a server alias")],
)
def test_user_filter_bad_answers_send_nothing(
    make_config: Callable[..., str], answer: Any, message: str
) -> None:
    cfg = make_config(filters=["user"])
    with msplugin.connect("sandbox", config=cfg, pick_server=lambda *a: answer) as c:
        with pytest.raises(msplugin.RoutingError, match=message):
            c.cursor().execute("SELECT 1")
        assert c.last_used is None


def test_user_filter_may_send_a_read_to_the_master(make_config: Callable[..., str]) -> None:
    cfg = make_config(filters=["user"])
    with msplugin.connect("sandbox", config=cfg, pick_server=lambda g, q, m, *rest: m[0]) as c:
        assert server_id(c) == PRIMARY


def test_user_multi_narrows_then_balancer_picks(make_config: Callable[..., str]) -> None:
    cfg = make_config(filters={"user_multi": {"callback": "live:only_slave_0"}, "roundrobin": []})
    with msplugin.connect("sandbox", config=cfg) as c:
        assert {server_id(c) for _ in range(6)} == {2}


def test_node_groups_restrict_by_leading_comment(make_config: Callable[..., str]) -> None:
    groups = {
        "node_groups": {
            "A": {"master": ["master_0"], "slave": ["slave_1"]},
            "EMPTY": {"master": [], "slave": []},
            "M": {"master": ["master_0"], "slave": []},
        },
        "roundrobin": [],
    }
    cfg = make_config(filters=groups)
    with msplugin.connect("sandbox", config=cfg) as c:
        assert {server_id(c, "/*A*/ SELECT @@server_id") for _ in range(4)} == {3}
        assert {server_id(c) for _ in range(4)} == {2, 3}  # no node group named: all
        # No slave left: the master serves the read (loop_before_master).
        assert server_id(c, "/*M*/ SELECT @@server_id") == PRIMARY
        with pytest.raises(msplugin.RoutingError, match="no master"):
            server_id(c, "/*EMPTY*/ SELECT @@server_id")
        with pytest.raises(msplugin.RoutingError, match="no master"):
            c.cursor().execute("/*EMPTY*/ CREATE TABLE IF NOT EXISTS ng (a INT)")
