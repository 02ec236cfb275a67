"""msplugin.galera's rules: which nodes serve, which one writes (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msplugin.config import GaleraConfig, GroupConfig, load_config
from msplugin.errors import ConfigError
from msplugin.galera import decide, why_not
from msplugin.topology import Observation, View, Wsrep, changes

NAMES = ("g1", "g2", "g3")
START = View(0, ("g1",), ("g2", "g3"), (), "as configured", checked=False)


def node(index: int, state: int = 4, **flags: bool) -> Observation:
    w = Wsrep(
        state=state,
        primary=flags.get("primary", True),
        ready=flags.get("ready", True),
        desync=flags.get("desync", False),
        rejecting=flags.get("rejecting", False),
        index=index,
    )
    return Observation(reachable=True, read_only=flags.get("read_only", False), wsrep=w)


def down() -> Observation:
    return Observation(reachable=False, error="refused")


def run(seen: dict[str, Observation], previous: View = START, **options: object) -> View:
    return decide(
        NAMES,
        seen,
        previous,
        writers_all=bool(options.get("writers_all", False)),
        priority=options.get("priority", ()),  # type: ignore[arg-type]
        donor_reads=bool(options.get("donor_reads", False)),
    )


def test_one_writer_lowest_index_and_the_others_read() -> None:
    view = run({"g1": node(2), "g2": node(0), "g3": node(1)})
    assert view.masters == ("g2",) and view.slaves == ("g1", "g3") and not view.out
    assert "lowest wsrep_local_index" in view.reason


def test_priority_wins_over_the_index() -> None:
    view = run({"g1": node(0), "g2": node(1), "g3": node(2)}, priority=("g3", "g2"))
    assert view.masters == ("g3",)


def test_the_writer_is_sticky_until_it_may_not_serve() -> None:
    first = run({"g1": node(1), "g2": node(0), "g3": node(2)})
    assert first.masters == ("g2",)
    # g1 now has the lowest index, but g2 still may serve: it keeps the writes.
    again = run({"g1": node(0), "g2": node(1), "g3": node(2)}, first)
    assert again.masters == ("g2",) and again.version == first.version
    gone = run({"g1": node(0), "g2": down(), "g3": node(1)}, again)
    assert gone.masters == ("g1",) and gone.out[0][0] == "g2"
    assert "does not answer" in gone.out[0][1]


def test_each_state_rule_takes_a_node_out() -> None:
    cases = {
        "not in the Primary component": node(1, primary=False),
        "wsrep_ready is OFF": node(1, ready=False),
        "rejects queries": node(1, rejecting=True),
        "desynced": node(1, state=2, desync=True),
        "not Synced (wsrep_local_state 1: Joining)": node(1, state=1),
        "not Synced (wsrep_local_state 2: Donor/Desynced)": node(1, state=2),
        "not a Galera node": Observation(reachable=True, read_only=False),
    }
    for why, seen in cases.items():
        view = run({"g1": node(0), "g2": seen, "g3": node(2)})
        assert view.slaves == ("g3",) and view.out == (("g2", view.out[0][1]),), why
        assert why in view.out[0][1]


def test_a_donor_reads_only_when_allowed_and_never_writes() -> None:
    donor = node(0, state=2)
    assert why_not(donor, write=False, donor_reads=True) == ""
    assert why_not(donor, write=True, donor_reads=True).startswith("not Synced")
    view = run({"g1": donor, "g2": node(1), "g3": node(2)}, donor_reads=True)
    assert view.masters == ("g2",) and view.slaves == ("g1", "g3")
    # Desynced on purpose is out, donor_reads or not.
    desynced = node(0, state=2, desync=True)
    assert why_not(desynced, write=False, donor_reads=True) == "desynced (wsrep_desync)"


def test_a_read_only_node_reads_but_does_not_write() -> None:
    view = run({"g1": node(0, read_only=True), "g2": node(1), "g3": node(2)})
    assert view.masters == ("g2",) and view.slaves == ("g1", "g3")


def test_writers_all_and_a_writer_alone_serves_reads() -> None:
    view = run({"g1": node(0), "g2": node(1), "g3": down()}, writers_all=True)
    assert view.masters == ("g1", "g2") and view.slaves == ()
    alone = run({"g1": down(), "g2": node(0), "g3": down()})
    assert alone.masters == ("g2",) and alone.slaves == ()
    assert "the writer serves them" in alone.reason


def test_changes_say_who_left_and_who_came_back() -> None:
    before = run({"g1": node(0), "g2": node(1), "g3": node(2)})
    out = run({"g1": node(0), "g2": node(1, state=2, desync=True), "g3": node(2)}, before)
    assert changes(before, out) == ["g2 out: desynced (wsrep_desync)"]
    back = run({"g1": node(0), "g2": node(1), "g3": node(2)}, out)
    assert changes(out, back) == ["back in: g2"]


wsrep_st = st.builds(
    Wsrep,
    state=st.sampled_from([1, 2, 3, 4]),
    primary=st.booleans(),
    ready=st.booleans(),
    desync=st.booleans(),
    rejecting=st.booleans(),
    index=st.integers(0, 5),
)
seen_st = st.fixed_dictionaries(
    {
        n: st.one_of(
            st.just(down()),
            st.builds(
                Observation, reachable=st.just(True), read_only=st.booleans(), wsrep=wsrep_st
            ),
        )
        for n in NAMES
    }
)


@given(seen_st, st.sampled_from([(), ("g1",), ("g2",), ("g3",)]), st.booleans(), st.booleans())
def test_only_eligible_nodes_serve_and_one_writes(
    seen: dict[str, Observation], master: tuple[str, ...], donor_reads: bool, writers_all: bool
) -> None:
    previous = View(3, master, tuple(n for n in NAMES if n not in master))
    view = run(seen, previous, donor_reads=donor_reads, writers_all=writers_all)
    for m in view.masters:
        assert why_not(seen[m], write=True, donor_reads=False) == ""
    for s in view.slaves:
        assert why_not(seen[s], write=False, donor_reads=donor_reads) == ""
    assert writers_all or len(view.masters) <= 1
    assert {n for n, _ in view.out} | set(view.masters) | set(view.slaves) == set(NAMES)
    if master and not why_not(seen[master[0]], write=True, donor_reads=False) and not writers_all:
        assert view.masters == master


def test_the_galera_section_is_checked_at_load(tmp_path: Path) -> None:
    def load(**group: object) -> GroupConfig:
        body = {"master": {"a": {"host": "h"}}, "slave": {"b": {"host": "h"}}, **group}
        path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps({"g": body}))
        return load_config(path).group("g")

    assert load(cluster="galera").galera == GaleraConfig()
    assert load(cluster="galera", galera={"priority": ["b"]}).galera.priority == ("b",)
    with pytest.raises(ConfigError) as info:
        load(cluster="galera", galera={"priority": ["c"], "writers": "two"})
    text = str(info.value)
    assert "g.galera.priority[0]: no server 'c'" in text and "g.galera.writers" in text
    with pytest.raises(ConfigError, match='only with "cluster": "galera"'):
        load(galera={})
