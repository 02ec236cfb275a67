"""Count the statements a facade connection routes the full way (not remembered by its core)."""

from __future__ import annotations

from typing import Any

import msplugin


def full_routes(conn: msplugin.Connection) -> list[str]:
    """A list that collects the text of every statement *conn* routes the full way from now
    on (a statement the core remembered is not routed again)."""
    routed: list[str] = []
    route = conn._router.route

    def counting(query: str, picked: Any = None) -> Any:
        routed.append(query)
        return route(query, picked)

    conn._router.route = counting  # type: ignore[method-assign]
    return routed
