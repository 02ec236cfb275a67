"""Routing decisions and load-balancing filters: pure logic, no server."""

from __future__ import annotations

from collections import Counter

import pytest

from msplugin.classify import classify
from msplugin.filters import RandomPicker, RoundRobinPicker
from msplugin.routing import AUTOCOMMIT_OFF, NO_TRANSACTION, OPEN, Policy, Target, decide

P = Policy()


def route(
    sql: str, policy: Policy = P, *, trx: bool = False, wrote: bool = False, last: bool = True
) -> Target:
    context = OPEN if trx else NO_TRANSACTION
    return decide(classify(sql), policy, trx=context, wrote=wrote, has_last_used=last).target


@pytest.mark.parametrize(
    ("sql", "target"),
    [
        ("SELECT 1", Target.SLAVE),
        ("INSERT INTO t VALUES (1)", Target.MASTER),
        ("/*ms=master*/SELECT 1", Target.MASTER),
        ("/*ms=slave*/SELECT 1", Target.SLAVE),
        ("/*ms=last_used*/SELECT 1", Target.LAST_USED),
        ("SELECT FOUND_ROWS()", Target.LAST_USED),
    ],
)
def test_basic_routes(sql: str, target: Target) -> None:
    assert route(sql) is target


def test_last_used_guess_before_anything_ran_goes_to_master() -> None:
    assert route("SELECT FOUND_ROWS()", last=False) is Target.MASTER


def test_transaction_pins_to_its_backend_and_ignores_hints() -> None:
    d = decide(classify("/*ms=slave*/SELECT 1"), P, trx=OPEN, wrote=False, has_last_used=True)
    assert d.target is Target.TRANSACTION
    assert "hint ms=slave ignored" in d.reason
    assert d.stat == "trx_master_forced"


def test_trx_stickiness_disabled_does_not_pin() -> None:
    assert route("SELECT 1", Policy(trx_stickiness="disabled"), trx=True) is Target.SLAVE


def test_master_on_write() -> None:
    policy = Policy(master_on_write=True)
    assert route("SELECT 1", policy, wrote=False) is Target.SLAVE
    assert route("SELECT 1", policy, wrote=True) is Target.MASTER
    assert route("/*ms=slave*/SELECT 1", policy, wrote=True) is Target.SLAVE  # hints still win


def test_no_slaves_means_master() -> None:
    policy = Policy(has_slaves=False)
    assert route("SELECT 1", policy) is Target.MASTER
    assert route("/*ms=slave*/SELECT 1", policy) is Target.MASTER


def test_strong_consistency_sends_reads_to_master() -> None:
    assert route("SELECT 1", Policy(qos="strong")) is Target.MASTER
    assert route("/*ms=strong*/SELECT 1") is Target.MASTER
    assert route("/*ms=eventual*/SELECT 1", Policy(qos="strong")) is Target.SLAVE
    assert route("/*ms=slave*/SELECT 1", Policy(qos="strong")) is Target.SLAVE  # routing hint wins


def test_autocommit_off_starts_transactions_on_the_master() -> None:
    d = decide(classify("SELECT 1"), P, trx=AUTOCOMMIT_OFF, wrote=False, has_last_used=False)
    assert d.target is Target.MASTER and d.stat == "trx_master_forced"


def test_read_only_transaction_goes_to_a_slave_only_with_stickiness_on() -> None:
    c = classify("START TRANSACTION READ ONLY")
    on = decide(
        c, Policy(trx_stickiness="on"), trx=NO_TRANSACTION, wrote=False, has_last_used=False
    )
    assert on.target is Target.SLAVE and on.stat == "trx_read_only_slave"
    master = decide(c, P, trx=NO_TRANSACTION, wrote=False, has_last_used=False)
    assert master.target is Target.MASTER


def test_session_consistency_is_asked_for_reads_only() -> None:
    policy = Policy(qos="session")
    assert (
        decide(classify("SELECT 1"), policy, trx="", wrote=True, has_last_used=True).consistency
        == "session"
    )
    assert (
        decide(
            classify("/*ms=session*/SELECT 1"), P, trx="", wrote=True, has_last_used=True
        ).consistency
        == "session"
    )


def test_decision_stats_use_mysqlnd_ms_names() -> None:
    def stat(sql: str) -> str:
        return decide(classify(sql), P, trx=NO_TRANSACTION, wrote=False, has_last_used=True).stat

    assert stat("SELECT 1") == "use_slave_guess"
    assert stat("UPDATE t SET a = 1") == "use_master_guess"
    assert stat("/*ms=master*/SELECT 1") == "use_master_sql_hint"
    assert stat("/*ms=slave*/SELECT 1") == "use_slave_sql_hint"
    assert stat("/*ms=last_used*/SELECT 1") == "use_last_used_sql_hint"


SLAVES = ("slave_0", "slave_1", "slave_2")


def test_roundrobin_cycles_in_order() -> None:
    rr = RoundRobinPicker(None)
    assert [rr.pick(SLAVES) for _ in range(7)] == [*SLAVES, *SLAVES, "slave_0"]


def test_roundrobin_peek_does_not_advance() -> None:
    rr = RoundRobinPicker(None)
    assert rr.peek(SLAVES) == "slave_0"
    assert rr.pick(SLAVES) == "slave_0"
    assert rr.peek(SLAVES) == "slave_1"


def test_weighted_roundrobin_is_smooth_and_proportional() -> None:
    rr = RoundRobinPicker({"slave_0": 5, "slave_1": 1, "slave_2": 1})
    picks = [rr.pick(SLAVES) for _ in range(7)]
    assert Counter(picks) == {"slave_0": 5, "slave_1": 1, "slave_2": 1}
    assert (
        picks[:2] != ["slave_0", "slave_0"] or picks[2] != "slave_0"
    )  # interleaved, not a burst of 5


def test_sticky_random_keeps_its_first_pick() -> None:
    r = RandomPicker(None, sticky=True)
    first = r.pick(SLAVES)
    assert all(r.pick(SLAVES) == first for _ in range(50))
    assert r.peek(SLAVES) == first


def test_sticky_random_moves_when_its_pick_is_not_a_candidate() -> None:
    r = RandomPicker(None, sticky=True)
    first = r.pick(SLAVES)
    others = tuple(s for s in SLAVES if s != first)
    second = r.pick(others)
    assert second in others
    assert r.pick(SLAVES) == second


def test_random_spreads_and_weights_bias() -> None:
    r = RandomPicker(None, sticky=False)
    assert set(r.pick(SLAVES) for _ in range(300)) == set(SLAVES)
    w = RandomPicker({"slave_0": 100, "slave_1": 1, "slave_2": 1}, sticky=False)
    counts = Counter(w.pick(SLAVES) for _ in range(1000))
    assert counts["slave_0"] > 900


def test_replicas_not_replicating_longer_than_the_limit_are_left_out() -> None:
    from msplugin.routing import split_replicating

    both = ("slave_0", "slave_1")
    assert split_replicating(both, {}, 100.0, 5.0) == (both, ())
    assert split_replicating(both, {"slave_0": 96.0}, 100.0, 5.0) == (both, ())  # 4 s: kept
    assert split_replicating(both, {"slave_0": 94.0}, 100.0, 5.0) == (("slave_1",), ("slave_0",))
    assert split_replicating(both, {"slave_0": 0.0, "slave_1": 0.0}, 100.0, 5.0) == ((), both)
    assert split_replicating(both, {"slave_0": 0.0}, 100.0, None) == (both, ())  # rule off
