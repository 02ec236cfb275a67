"""msplugin.topology's rules: which server is the master, from what the servers said."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from msplugin.topology import Observation, View, changes, decide

NAMES = ("a", "b", "c")
ADDR = {"a": ("127.0.0.1", 1), "b": ("127.0.0.1", 2), "c": ("127.0.0.1", 3)}
CONFIGURED = View(0, ("a",), ("b", "c"), (), "as configured", checked=False)
CHECKED = View(1, ("a",), ("b", "c"), (), "a is writable")


def primary() -> Observation:
    return Observation(reachable=True, read_only=False)


def replica(of: str | None = "a", *, running: bool = True) -> Observation:
    source = ADDR[of] if of is not None else None
    return Observation(reachable=True, read_only=True, source=source, replicating=running)


def down() -> Observation:
    return Observation(reachable=False, error="refused")


def run(seen: dict[str, Observation], previous: View = CHECKED, multi: bool = False) -> View:
    return decide(NAMES, ADDR, seen, previous, multi_master=multi)


def test_steady_state_keeps_roles_and_version() -> None:
    view = run({"a": primary(), "b": replica(), "c": replica()})
    assert (view.masters, view.slaves, view.version) == (("a",), ("b", "c"), 1)
    assert not view.conflict


def test_the_file_can_be_wrong_at_the_first_check() -> None:
    view = run({"a": replica("b"), "b": primary(), "c": replica("b")}, CONFIGURED)
    assert view.masters == ("b",) and view.slaves == ("a", "c")
    assert view.version == 1 and "only writable" in view.reason


def test_switchover_goes_through_no_master() -> None:
    # The old primary is read-only, the target not yet writable: no one takes writes.
    during = run({"a": replica(None), "b": replica(), "c": replica()})
    assert during.masters == () and during.version == 2
    assert "no server is writable" in during.reason
    after = run({"a": replica(None), "b": primary(), "c": replica()}, during)
    assert after.masters == ("b",) and after.slaves == ("a", "c") and after.version == 3


def test_a_dead_master_keeps_the_role_until_another_is_writable() -> None:
    view = run({"a": down(), "b": replica(running=True), "c": replica()})
    assert view.masters == ("a",) and view.version == 1  # writes fail fast on a, not moved
    promoted = run({"a": down(), "b": primary(), "c": replica("b")}, view)
    assert promoted.masters == ("b",) and "a is down" in promoted.reason


def test_split_brain_never_moves_writes() -> None:
    now = View(5, ("b",), ("a", "c"), (), "b is the only writable server")
    view = run({"a": primary(), "b": primary(), "c": replica("b")}, now)
    assert view.masters == ("b",) and view.conflict == ("a",) and view.slaves == ("c",)
    assert view.version == 6  # a leaves the slaves: no reads on a server that may diverge


def test_split_brain_at_the_first_check_follows_replication() -> None:
    # The file still names a (the old primary, restarted writable); c replicates from b.
    view = run({"a": primary(), "b": primary(), "c": replica("b")}, CONFIGURED)
    assert view.masters == ("b",) and view.conflict == ("a",)


def test_two_writable_servers_that_replication_cannot_tell_apart_get_no_writes() -> None:
    view = run({"a": primary(), "b": primary(), "c": replica(None)}, CONFIGURED)
    assert view.masters == () and set(view.conflict) == {"a", "b"}


def test_a_writable_replica_never_takes_writes() -> None:
    # b lacks read_only but replicates: a replica, not a promoted one.
    during = View(2, (), ("a", "b", "c"), (), "no server is writable")
    view = run(
        {"a": replica(None), "b": Observation(True, False, ADDR["a"], True), "c": replica()}, during
    )
    assert view.masters == () and view.conflict == ("b",)


def test_multi_master_takes_every_writable_server() -> None:
    view = run({"a": primary(), "b": primary(), "c": replica()}, multi=True)
    assert view.masters == ("a", "b") and view.slaves == ("c",)


def test_changes_name_the_old_and_new_master() -> None:
    new = View(2, ("b",), ("a", "c"), (), "b is the only writable server")
    lines = changes(CHECKED, new)
    assert lines[0] == "master a -> b: b is the only writable server"
    assert "now slaves: a" in lines
    assert changes(CHECKED, CHECKED) == []


seen_st = st.fixed_dictionaries(
    {
        n: st.builds(
            Observation,
            reachable=st.booleans(),
            read_only=st.booleans(),
            source=st.sampled_from([None, *ADDR.values()]),
            replicating=st.booleans(),
        )
        for n in NAMES
    }
)
previous_st = st.builds(
    View,
    version=st.integers(0, 5),
    masters=st.sampled_from([(), ("a",), ("b",), ("c",)]),
    slaves=st.just(()),
    checked=st.booleans(),
    answered=st.booleans(),
)


@given(seen_st, previous_st)
def test_never_a_read_only_writer_and_at_most_one(
    seen: dict[str, Observation], previous: View
) -> None:
    previous = View(
        previous.version,
        previous.masters,
        tuple(n for n in NAMES if n not in previous.masters),
        checked=previous.checked,
        answered=previous.answered,
    )
    view = run(seen, previous)
    assert len(view.masters) <= 1
    assert set(view.masters) | set(view.slaves) | set(view.conflict) == set(NAMES)
    assert not set(view.masters) & set(view.slaves)
    assert not set(view.conflict) & (set(view.slaves) | set(view.masters))
    for m in view.masters:
        # A master is writable, or the previous one that stopped answering.
        assert seen[m].writable or (m in previous.masters and not seen[m].reachable)
    master = previous.master
    if previous.checked and previous.answered and master is not None and seen[master].writable:
        assert view.masters == previous.masters  # a writable master keeps the writes
    assert view.version == previous.version + (not view.same_roles(previous))


def test_a_master_back_from_an_outage_has_no_claim_over_the_promoted_one() -> None:
    # a died (the check saw it), b was promoted and c repointed before the next check, and
    # a came back writable: the check never saw b writable while a was away.
    away = run({"a": down(), "b": replica(), "c": replica()})
    assert away.masters == ("a",) and not away.answered
    back = run({"a": primary(), "b": primary(), "c": replica("b")}, away)
    assert back.masters == ("b",) and back.conflict == ("a",) and back.answered


def test_a_master_back_from_a_blip_is_the_master_again() -> None:
    away = run({"a": down(), "b": replica(), "c": replica()})
    back = run({"a": primary(), "b": replica(), "c": replica()}, away)
    assert back.masters == ("a",) and back.version == away.version and back.answered
