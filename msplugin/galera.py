"""Galera Cluster: which nodes may serve, which one takes the writes. Pure.

With ``"cluster": "galera"`` the group's servers are the nodes of one cluster. The monitor
(msplugin.topology_monitor) reads each node's wsrep state; ``decide()`` applies the rules
that ProxySQL's ``mysql_galera_hostgroups`` and MaxScale's ``galeramon`` apply (MANUAL 25):

- A node serves only if it answers, is in the Primary component (``wsrep_cluster_status``),
  is ready (``wsrep_ready``), does not reject queries (``wsrep_reject_queries``), is not
  desynced (``wsrep_desync``) and is Synced (``wsrep_local_state`` 4). A Donor (state 2,
  serving a state transfer) may serve reads with ``galera.donor_reads``; never writes.
- A node whose ``read_only`` is on never takes writes.
- ``galera.writers`` "one" (default): one writer at a time, so that two nodes never
  certify conflicting writes. It stays the writer while it may serve; else the first
  eligible node of ``galera.priority``, else the eligible node with the lowest
  ``wsrep_local_index``. "all": every eligible node takes writes.
- Reads go to the other eligible nodes; to the writer when no other may serve.
"""

from __future__ import annotations

from collections.abc import Mapping

from msplugin.topology import Observation, View, Wsrep

__all__ = ["SYNCED", "Wsrep", "decide", "detected", "why_not"]

SYNCED = 4
DONOR = 2
_STATES = {1: "Joining", 2: "Donor/Desynced", 3: "Joined", 4: "Synced"}


def detected(seen: Mapping[str, Observation]) -> bool:
    """Discovery found a Galera cluster: every server that answered has wsrep_on."""
    answered = [o for o in seen.values() if o.reachable]
    return bool(answered) and all(o.wsrep_on for o in answered)


def why_not(seen: Observation, *, write: bool, donor_reads: bool) -> str:
    """Why the node that said *seen* may not serve a read (or with *write*, a write); ""
    when it may."""
    if not seen.reachable:
        return f"does not answer ({seen.error})"
    w = seen.wsrep
    if w is None:
        return "not a Galera node (wsrep_on is OFF)"
    if not w.primary:
        return "not in the Primary component"
    if not w.ready:
        return "wsrep_ready is OFF"
    if w.rejecting:
        return "it rejects queries (wsrep_reject_queries)"
    if w.desync:
        return "desynced (wsrep_desync)"
    donor = w.state == DONOR and donor_reads and not write
    if w.state != SYNCED and not donor:
        return f"not Synced (wsrep_local_state {w.state}: {_STATES.get(w.state, 'unknown')})"
    if write and seen.read_only:
        return "read_only is on"
    return ""


def decide(
    names: tuple[str, ...],
    seen: Mapping[str, Observation],
    previous: View,
    *,
    writers_all: bool,
    priority: tuple[str, ...],
    donor_reads: bool,
) -> View:
    """The writer(s) and readers after the check that saw *seen* (see the module)."""
    may_write = [n for n in names if not why_not(seen[n], write=True, donor_reads=False)]
    may_read = [n for n in names if not why_not(seen[n], write=False, donor_reads=donor_reads)]
    if writers_all:
        masters, why = tuple(may_write), "every eligible node takes writes (writers: all)"
    else:
        masters, why = _one_writer(may_write, seen, previous, priority)
    slaves = tuple(n for n in may_read if n not in masters)
    out = tuple(
        (n, why_not(seen[n], write=False, donor_reads=donor_reads))
        for n in names
        if n not in masters and n not in slaves
    )
    if not slaves and masters:
        why += "; no other node may serve reads: the writer serves them"
    same = masters == previous.masters and slaves == previous.slaves
    return View(previous.version + (not same), masters, slaves, (), why, True, True, out)


def _one_writer(
    candidates: list[str],
    seen: Mapping[str, Observation],
    previous: View,
    priority: tuple[str, ...],
) -> tuple[tuple[str, ...], str]:
    current = previous.master if previous.checked else None
    if current is not None and current in candidates:
        return (current,), f"{current} takes the writes (it did, and may serve)"
    if not candidates:
        return (), "no node may take writes: writes wait for one"
    was = f" ({current} may not serve)" if current is not None else ""
    for name in priority:
        if name in candidates:
            return (name,), f"{name} takes the writes: first eligible in galera.priority{was}"
    chosen = min(candidates, key=lambda n: _index(seen[n]))
    return (chosen,), f"{chosen} takes the writes: lowest wsrep_local_index{was}"


def _index(seen: Observation) -> int:
    return seen.wsrep.index if seen.wsrep is not None else 0
