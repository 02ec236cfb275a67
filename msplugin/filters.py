"""Filters: pick one server alias among candidates, or narrow the candidates. No I/O.

One picker object lives per facade connection, because ``sticky`` and the round-robin position
are per connection (as in mysqlnd_ms, per request). ``least_connections`` and
``fastest_response`` compare process-wide figures: connections held per server, and a moving
average of each server's statement latency.
"""

from __future__ import annotations

import importlib
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from msplugin.config import FilterConfig
from msplugin.driver import Address, connections_in_use
from msplugin.errors import ProgrammingError, RoutingError

__all__ = [
    "Context",
    "FastestResponsePicker",
    "LeastConnectionsPicker",
    "Narrower",
    "Picker",
    "RandomPicker",
    "RoundRobinPicker",
    "UserPicker",
    "load_callback",
    "make_narrower",
    "make_picker",
    "record_latency",
]

# What user callbacks get besides the candidates: (group, statement, last used alias or None,
# transaction open). Set by the facade before each routed statement when a callback is used.
Context = tuple[str, str, "str | None", bool]
NO_CONTEXT: Final[Context] = ("", "", None, False)


class Picker(Protocol):
    """Chooses one server alias among *candidates* (never empty)."""

    chosen: str | None  # the server every pick returns while it is a candidate, if any

    def pick(self, candidates: Sequence[str]) -> str: ...

    def peek(self, candidates: Sequence[str]) -> str | None:
        """The alias ``pick`` would return now, without moving on; None if it is left to chance."""
        ...


class RandomPicker:
    """mysqlnd_ms's ``random`` filter; with ``sticky`` the first pick is kept (random once)."""

    __slots__ = ("_rng", "_sticky", "_weights", "chosen")

    def __init__(self, weights: Mapping[str, int] | None, sticky: bool) -> None:
        self._weights = weights
        self._sticky = sticky
        self._rng = random.Random()
        self.chosen: str | None = None

    def pick(self, candidates: Sequence[str]) -> str:
        chosen = self.chosen
        if chosen is not None and chosen in candidates:
            return chosen
        if self._weights is None:
            n = len(candidates)
            # random() * n, not choice(): choice() is pure Python and costs more than the
            # rest of routing; the bias for a handful of candidates is below 1e-15.
            alias = candidates[0] if n == 1 else candidates[int(self._rng.random() * n)]
        else:
            w = self._weights
            alias = self._rng.choices(candidates, [w[c] for c in candidates])[0]
        if self._sticky:
            self.chosen = alias
        return alias

    def peek(self, candidates: Sequence[str]) -> str | None:
        if self.chosen is not None and self.chosen in candidates:
            return self.chosen
        return candidates[0] if len(candidates) == 1 else None


class RoundRobinPicker:
    """mysqlnd_ms's ``roundrobin`` filter: cycle over the candidates in configured order.

    With weights it is a smooth weighted round robin (nginx's): over one cycle each server is
    picked as often as its weight, interleaved rather than in bursts.
    """

    __slots__ = ("_current", "_position", "_weights")
    chosen: str | None = None  # picks anew each time (random once keeps one)

    def __init__(self, weights: Mapping[str, int] | None) -> None:
        self._weights = weights
        self._position = 0
        self._current: dict[str, int] = {}

    def _next(self, candidates: Sequence[str], advance: bool) -> str:
        if self._weights is None:
            alias = candidates[self._position % len(candidates)]
            if advance:
                self._position += 1
            return alias
        w = self._weights
        current = {c: self._current.get(c, 0) + w[c] for c in candidates}
        alias = max(candidates, key=lambda c: current[c])
        if advance:
            current[alias] -= sum(w[c] for c in candidates)
            self._current = current
        return alias

    def pick(self, candidates: Sequence[str]) -> str:
        return self._next(candidates, advance=True)

    def peek(self, candidates: Sequence[str]) -> str | None:
        return self._next(candidates, advance=False)


class LeastConnectionsPicker:
    """The candidate with the fewest backend connections held by this process's facade
    connections (pooled or not); ties go to a random one of them."""

    __slots__ = ("_addresses", "_rng")
    chosen: str | None = None  # picks anew each time (random once keeps one)

    def __init__(self, addresses: Mapping[str, Address]) -> None:
        self._addresses = addresses
        self._rng = random.Random()

    def pick(self, candidates: Sequence[str]) -> str:
        counts = [connections_in_use(self._addresses[c]) for c in candidates]
        low = min(counts)
        best = [c for c, n in zip(candidates, counts, strict=True) if n == low]
        return best[0] if len(best) == 1 else self._rng.choice(best)

    def peek(self, candidates: Sequence[str]) -> str | None:
        return None


# Process-wide moving average of statement latency per server (seconds), for fastest_response.
_latency: dict[Address, float] = {}
_latency_lock = threading.Lock()
LATENCY_WEIGHT: Final = 0.2  # weight of the newest measurement in the moving average


def record_latency(address: Address, seconds: float) -> None:
    """Fold one measured statement latency into *address*'s moving average."""
    with _latency_lock:
        old = _latency.get(address)
        _latency[address] = seconds if old is None else old + LATENCY_WEIGHT * (seconds - old)


def latency(address: Address) -> float | None:
    return _latency.get(address)


class FastestResponsePicker:
    """The candidate with the lowest moving average of measured statement latency. Servers not
    measured yet are tried first, so that every candidate gets a figure."""

    __slots__ = ("_addresses", "_rng")
    chosen: str | None = None  # picks anew each time (random once keeps one)

    def __init__(self, addresses: Mapping[str, Address]) -> None:
        self._addresses = addresses
        self._rng = random.Random()

    def pick(self, candidates: Sequence[str]) -> str:
        figures = [(_latency.get(self._addresses[c]), c) for c in candidates]
        unknown = [c for f, c in figures if f is None]
        if unknown:
            return self._rng.choice(unknown)
        return min(figures, key=lambda fc: fc[0] or 0.0)[1]

    def peek(self, candidates: Sequence[str]) -> str | None:
        return None


UserCallback = Callable[..., Any]
Step = Callable[
    [Context, tuple[str, ...], tuple[str, ...]], tuple[tuple[str, ...], tuple[str, ...]]
]


def load_callback(spec: str, where: str) -> UserCallback:
    """Import ``"module:function"``; a clear error names *where* it was configured."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProgrammingError(f"{where}: cannot import module {module_name!r}: {exc}") from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise ProgrammingError(f"{where}: module {module_name!r} has no callable {attr!r}")
    return func  # type: ignore[no-any-return]


class UserPicker:
    """mysqlnd_ms's ``user`` filter: the application's callback picks the server.

    ``callback(group, statement, masters, slaves, last_used, in_transaction)`` gets the
    candidate aliases (for a write, no slaves) and returns one alias.
    """

    __slots__ = ("_callback", "context", "masters")
    chosen: str | None = None  # picks anew each time (random once keeps one)

    def __init__(self, callback: UserCallback, masters: Sequence[str]) -> None:
        self._callback = callback
        self.masters = tuple(masters)  # the candidate masters of the current statement
        self.context: Context = NO_CONTEXT

    def choose(self, masters: Sequence[str], slaves: Sequence[str]) -> str:
        group, query, last_used, in_trx = self.context
        alias = self._callback(group, query, list(masters), list(slaves), last_used, in_trx)
        if not isinstance(alias, str):
            raise RoutingError(
                f"filter 'user': the callback returned {type(alias).__name__} {alias!r}, "
                "expected a server alias (str); nothing was sent"
            )
        if alias not in masters and alias not in slaves:
            raise RoutingError(
                f"filter 'user': the callback returned {alias!r}, which is not one of the "
                f"candidates (masters {list(masters)}, slaves {list(slaves)}); nothing was sent"
            )
        return alias

    def pick(self, candidates: Sequence[str]) -> str:
        return self.choose(self.masters, candidates)

    def peek(self, candidates: Sequence[str]) -> str | None:
        return None


class Narrower:
    """The multi filters before the load balancer: ``user_multi`` (a callback returns the
    candidate masters and slaves) and ``node_groups`` (a leading ``/*name*/`` comment names a
    node group). Each narrows the lists the next one gets."""

    __slots__ = ("_steps", "context")

    def __init__(self, steps: Sequence[Step]) -> None:
        self._steps = tuple(steps)
        self.context: Context = NO_CONTEXT

    def narrow(
        self, masters: tuple[str, ...], slaves: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        for step in self._steps:
            masters, slaves = step(self.context, masters, slaves)
        return masters, slaves


def _user_multi(callback: UserCallback) -> Step:
    def step(
        ctx: Context, masters: tuple[str, ...], slaves: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        group, query, last_used, in_trx = ctx
        result = callback(group, query, list(masters), list(slaves), last_used, in_trx)
        if (
            not isinstance(result, (tuple, list))
            or len(result) != 2
            or not all(isinstance(part, (tuple, list)) for part in result)
        ):
            raise RoutingError(
                f"filter 'user_multi': the callback returned {result!r}, expected "
                "(masters, slaves): two lists of server aliases; nothing was sent"
            )
        new_m, new_s = tuple(result[0]), tuple(result[1])
        bad = [a for a in new_m if a not in masters] + [a for a in new_s if a not in slaves]
        if bad:
            raise RoutingError(
                f"filter 'user_multi': the callback returned {bad}, not among the candidates "
                f"(masters {list(masters)}, slaves {list(slaves)}); nothing was sent"
            )
        return new_m, new_s

    return step


def node_group_of(query: str) -> str | None:
    """The name in a leading ``/*name*/`` comment, if any (whitespace allowed around it)."""
    text = query.lstrip()
    if not text.startswith("/*"):
        return None
    end = text.find("*/", 2)
    return text[2:end].strip() if end > 0 else None


def _node_groups(
    groups: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
) -> Step:
    def step(
        ctx: Context, masters: tuple[str, ...], slaves: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        name = node_group_of(ctx[1])
        if name is None or name not in groups:
            return masters, slaves  # no node group named: every server stays a candidate
        g_masters, g_slaves = groups[name]
        return (
            tuple(m for m in masters if m in g_masters),
            tuple(s for s in slaves if s in g_slaves),
        )

    return step


def make_narrower(filters: Sequence[FilterConfig], where: str) -> Narrower | None:
    """The group's narrowing filters (user_multi, node_groups) in chain order, or None."""
    steps = []
    for f in filters:
        if f.name == "user_multi":
            if f.callback is None:
                raise ProgrammingError(
                    f'{where}.filters.user_multi: needs "callback": "module:function"'
                )
            steps.append(_user_multi(load_callback(f.callback, f"{where}.filters.user_multi")))
        elif f.name == "node_groups" and f.node_groups is not None:
            steps.append(_node_groups(f.node_groups))
    return Narrower(steps) if steps else None


def make_picker(
    filters: Sequence[FilterConfig],
    addresses: Mapping[str, Address],
    masters: Sequence[str],
    where: str,
    pick_server: UserCallback | None = None,
) -> Picker:
    """Build the picker for a group's filter chain (its last filter picks the server)."""
    lb = filters[-1]
    if lb.name == "random":
        return RandomPicker(lb.weights, lb.sticky)
    if lb.name == "roundrobin":
        return RoundRobinPicker(lb.weights)
    if lb.name == "least_connections":
        return LeastConnectionsPicker(addresses)
    if lb.name == "fastest_response":
        return FastestResponsePicker(addresses)
    assert lb.name == "user"
    callback = load_callback(lb.callback, f"{where}.filters.user") if lb.callback else pick_server
    if callback is None:
        raise ProgrammingError(
            f'{where}.filters.user: no callback: give "callback": "module:function" in the '
            "configuration or connect(..., pick_server=callable)"
        )
    return UserPicker(callback, masters)
