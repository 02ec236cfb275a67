"""Which server is the master: roles decided from what the servers say, not from the file.

With ``"topology": {"discover": true}`` the servers listed under ``master`` and ``slave`` form
a pool. The monitor (msplugin.topology_monitor) asks each one whether it is read-only and
where it replicates from (an ``Observation``); ``decide()`` turns those answers and the
previous ``View`` into the next one. Pure: values in, a view and its reasons out.

The rules, in order (MANUAL 24):

- A server whose ``read_only`` is on never takes writes.
- The current master keeps the writes while it is writable: a second writable server is a
  conflict (split brain), logged every check, never a reason to move writes. The file's
  master before the first check, and a master returning after a check it did not answer
  (it may have restarted after a failover), have no such claim: they compete as below.
- The current master that cannot be reached keeps the role until another server is
  writable: writes fail fast on it (the quarantine), they do not move to a read-only server.
- Otherwise the writable server that does not replicate is the master (a writable server
  that replicates is a replica missing ``read_only``: reported, never written to); of
  several, the one the others replicate from; if that does not tell them apart, none is
  (writes wait, then fail).
- No writable server and the master read-only: no master (a switchover in progress);
  writes wait for one, bounded by ``topology.wait``.
- Every other server is a slave; a writable server that is not the master (a conflict)
  gets neither writes nor reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Observation", "View", "Wsrep", "changes", "decide"]


@dataclass(frozen=True, slots=True)
class Wsrep:
    """A node's wsrep status and settings, as one check read them."""

    state: int  # wsrep_local_state
    primary: bool  # wsrep_cluster_status is Primary
    ready: bool  # wsrep_ready
    desync: bool  # wsrep_desync
    rejecting: bool  # wsrep_reject_queries is not NONE
    index: int  # wsrep_local_index


@dataclass(frozen=True, slots=True)
class Observation:
    """What one server said at one check (or that it did not answer)."""

    reachable: bool
    read_only: bool = True
    source: tuple[str, int] | None = None  # host and port it replicates from
    replicating: bool = False  # a replication thread runs, or tries to
    error: str = ""
    wsrep: Wsrep | None = None  # a Galera node's state (cluster: galera)
    wsrep_on: bool = False  # MariaDB's wsrep_on: the server is a Galera node

    @property
    def writable(self) -> bool:
        return self.reachable and not self.read_only


@dataclass(frozen=True, slots=True)
class View:
    """The roles of a group's servers at one moment; ``version`` grows with every change."""

    version: int
    masters: tuple[str, ...]  # the writers: one, none during a change, several multi_master
    slaves: tuple[str, ...]
    conflict: tuple[str, ...] = ()  # writable, not the master (split brain): no reads either
    reason: str = ""
    # False for the file's roles, before any check: its master has no claim to stay master
    # (the file may predate a failover), replication decides between writable servers.
    checked: bool = True
    # The master answered at this check. One that did not has no claim to stay master when
    # it returns: it may have restarted, and another server been promoted meanwhile.
    answered: bool = True
    out: tuple[tuple[str, str], ...] = ()  # Galera: the nodes that may not serve, and why

    @property
    def master(self) -> str | None:
        return self.masters[0] if self.masters else None

    def same_roles(self, other: View) -> bool:
        return self.masters == other.masters and self.slaves == other.slaves

    def describe(self) -> str:
        master = ", ".join(self.masters) or "none"
        text = f"master {master}; slaves {', '.join(self.slaves) or 'none'}"
        if self.conflict:
            text += f"; also writable, not used: {', '.join(self.conflict)}"
        if self.out:
            text += "; out: " + ", ".join(f"{n} ({why})" for n, why in self.out)
        return text


def decide(
    names: tuple[str, ...],
    addresses: Mapping[str, tuple[str, int]],
    seen: Mapping[str, Observation],
    previous: View,
    *,
    multi_master: bool,
) -> View:
    """The roles after the check that saw *seen* (server name -> its answer), given the
    *previous* view; *names*: the pool in configuration order; *addresses*: where each one
    listens, to tell who replicates from whom."""
    writable = tuple(n for n in names if seen[n].writable)
    if multi_master:
        masters, conflict, why = _multi(writable, previous, seen)
    else:
        masters, conflict, why = _single(names, addresses, writable, previous, seen)
    # A writable server that does not take writes gets no reads either: it may hold
    # writes the master has not (split brain), or miss what it should replicate.
    slaves = tuple(n for n in names if n not in masters and n not in conflict)
    same = masters == previous.masters and slaves == previous.slaves
    answered = all(seen[m].reachable for m in masters)
    return View(previous.version + (not same), masters, slaves, conflict, why, True, answered)


def _multi(
    writable: tuple[str, ...], previous: View, seen: Mapping[str, Observation]
) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """multi_master: every writable server is a master; an unreachable master stays one."""
    kept = tuple(n for n in previous.masters if not seen[n].reachable)
    masters = tuple(dict.fromkeys(writable + kept))
    return masters, (), "multi_master: every writable server takes writes"


def _single(
    names: tuple[str, ...],
    addresses: Mapping[str, tuple[str, int]],
    writable: tuple[str, ...],
    previous: View,
    seen: Mapping[str, Observation],
) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    current = previous.master if previous.checked else None
    if current is not None and current in writable and previous.answered:
        others = tuple(n for n in writable if n != current)
        why = f"{current} is writable" + (" and was the master" if others else "")
        return (current,), others, why
    # A writable server that still replicates is a replica missing read_only, not a
    # promoted one: it never takes the writes (and is reported as a conflict).
    free = tuple(n for n in writable if not seen[n].replicating)
    stuck = tuple(n for n in writable if n not in free)
    if current is not None and not seen[current].reachable and not free:
        return (current,), stuck, f"{current} does not answer and no other server is writable"
    if len(free) == 1:
        (only,) = free
        was = ""
        if current is not None:
            was = f" ({current} {'is read-only now' if seen[current].reachable else 'is down'})"
        return (only,), stuck, f"{only} is the only writable server{was}"
    if not free:
        read_only = f"{current} is read-only and " if current is not None else ""
        return (), stuck, f"{read_only}no server is writable: writes wait for a master"
    chosen = _replicated_from(names, addresses, free, seen)
    if chosen is None:
        return (
            (),
            writable,
            (
                f"{len(free)} servers are writable ({', '.join(free)}) and replication "
                "does not say which is the master: no writes until one is read-only"
            ),
        )
    rest = tuple(n for n in writable if n != chosen)
    return (chosen,), rest, f"{chosen} is writable and the others replicate from it"


def _replicated_from(
    names: tuple[str, ...],
    addresses: Mapping[str, tuple[str, int]],
    writable: tuple[str, ...],
    seen: Mapping[str, Observation],
) -> str | None:
    """The writable server most others replicate from, if exactly one is."""
    by_address = {addresses[n]: n for n in names}
    votes = {n: 0 for n in writable}
    for n in names:
        source = seen[n].source
        origin = by_address.get(source) if source is not None else None
        if origin in votes:
            votes[origin] += 1
    best = max(votes.values())
    top = [n for n, v in votes.items() if v == best]
    return top[0] if best > 0 and len(top) == 1 else None


def changes(old: View, new: View) -> list[str]:
    """What a role change says in the log (old and new master, and why)."""
    if old.same_roles(new):
        return []
    lines = []
    if old.masters != new.masters:
        before = ", ".join(old.masters) or "none"
        after = ", ".join(new.masters) or "none"
        lines.append(f"master {before} -> {after}: {new.reason}")
    was_out = dict(old.out)
    demoted = sorted(set(new.slaves) - set(old.slaves) - set(was_out))
    if demoted:
        lines.append(f"now slaves: {', '.join(demoted)}")
    unused = sorted(set(new.conflict) - set(old.conflict))
    if unused:
        lines.append(f"neither reads nor writes for {', '.join(unused)}: {new.reason}")
    lines += [f"{n} out: {why}" for n, why in new.out if n not in was_out]
    back = sorted(set(was_out) - {n for n, _ in new.out})
    if back:
        lines.append(f"back in: {', '.join(back)}")
    return lines
