"""Load-balancing filters: pick one server alias among candidates. Pure selection, no I/O.

One picker object lives per facade connection, because ``sticky`` and the round-robin position
are per connection (as in mysqlnd_ms, per request).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Protocol

from msplugin.config import FilterConfig
from msplugin.errors import NotSupportedError

__all__ = ["Picker", "RandomPicker", "RoundRobinPicker", "make_picker"]


class Picker(Protocol):
    """Chooses one server alias among *candidates* (never empty)."""

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
            alias = candidates[0] if len(candidates) == 1 else self._rng.choice(candidates)
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


def make_picker(filters: Sequence[FilterConfig]) -> Picker:
    """Build the picker for a group's filter chain (its last filter picks the server)."""
    lb = filters[-1]
    if lb.name == "random":
        return RandomPicker(lb.weights, lb.sticky)
    if lb.name == "roundrobin":
        return RoundRobinPicker(lb.weights)
    raise NotSupportedError(
        f"filter {lb.name!r} is accepted in the configuration but not implemented in this "
        "version of msplugin; use 'random' or 'roundrobin'"
    )
