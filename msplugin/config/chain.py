"""The filter chain of a group: load balancers and the filters that narrow candidates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from msplugin.config.check import Checker, did_you_mean, show
from msplugin.config.model import (
    DEFAULT_FILTERS,
    FILTER_NAMES,
    LOAD_BALANCERS,
    UNSUPPORTED_FILTERS,
    FilterConfig,
    QosLevel,
)

__all__ = ["parse_filters"]

_CALLBACK_RE: Final = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def parse_filters(
    chk: Checker, path: str, value: object, servers: tuple[str, ...]
) -> tuple[FilterConfig, ...]:
    entries: list[tuple[str, str, object]]  # (name, path, args)
    if isinstance(value, list):
        entries = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                entries.append((item, f"{path}[{i}]", {}))
            else:
                chk.problem(f"{path}[{i}]", f"expected a filter name, got {show(item)}")
    elif isinstance(value, dict):
        entries = [(k, f"{path}.{k}", v) for k, v in value.items()]
    else:
        chk.problem(path, f"expected an object or a list of filter names, got {show(value)}")
        return DEFAULT_FILTERS
    chain: list[FilterConfig] = []
    for name, fpath, args in entries:
        if name in UNSUPPORTED_FILTERS:
            chk.problem(fpath, UNSUPPORTED_FILTERS[name])
            continue
        if name not in FILTER_NAMES:
            chk.problem(
                fpath,
                f"unknown filter {name!r}{did_you_mean(name, FILTER_NAMES)}; "
                f"known: {', '.join(sorted(FILTER_NAMES))}",
            )
            continue
        f = _parse_filter(chk, fpath, name, args, servers)
        if f is not None:
            chain.append(f)
    names = [f.name for f in chain]
    lb = [n for n in names if n in LOAD_BALANCERS]
    if len(lb) > 1:
        chk.problem(
            path,
            f"at most one load-balancing filter is allowed, got {', '.join(lb)} "
            "(random, roundrobin, user, least_connections and fastest_response each pick "
            "one server)",
        )
    elif lb and names[-1] != lb[0]:
        chk.problem(path, f"the load-balancing filter {lb[0]!r} must be the last of the chain")
    if not lb:
        chain.append(FilterConfig(name="random", sticky=True))
    return tuple(chain)


_FILTER_ARGS: Final = {
    "random": frozenset({"sticky", "weights"}),
    "roundrobin": frozenset({"weights"}),
    "user": frozenset({"callback"}),
    "user_multi": frozenset({"callback"}),
    "least_connections": frozenset(),
    "fastest_response": frozenset(),
    "quality_of_service": frozenset(
        {"strong_consistency", "session_consistency", "eventual_consistency"}
    ),
}


def _parse_filter(
    chk: Checker, path: str, name: str, args: object, servers: tuple[str, ...]
) -> FilterConfig | None:
    if isinstance(args, list) and not args:
        args = {}  # PHP's json_encode writes an empty array for "no arguments"
    obj = chk.mapping(path, args)
    if obj is None:
        return None
    if name == "node_groups":
        return _parse_node_groups(chk, path, obj, servers)
    chk.unknown_keys(path, obj, _FILTER_ARGS[name])
    if name == "quality_of_service":
        return _parse_qos(chk, path, obj)
    weights = None
    if "weights" in obj:
        weights = _parse_weights(chk, f"{path}.weights", obj["weights"], servers)
    callback = chk.field(obj, path, "callback", chk.nonempty, None)
    if callback is not None and not _CALLBACK_RE.fullmatch(callback):
        chk.problem(f"{path}.callback", f'expected "module:function", got {show(callback)}')
    sticky = chk.field(obj, path, "sticky", chk.boolean, False)
    return FilterConfig(name=name, sticky=sticky, weights=weights, callback=callback)


def _parse_weights(
    chk: Checker, path: str, value: object, servers: tuple[str, ...]
) -> Mapping[str, int] | None:
    obj = chk.mapping(path, value)
    if obj is None:
        return None
    weights: dict[str, int] = {}
    for alias, w in obj.items():
        if alias not in servers:
            chk.problem(
                f"{path}.{alias}",
                f"no server {alias!r} in this group{did_you_mean(alias, tuple(servers))}; "
                f"servers: {', '.join(servers)}",
            )
            continue
        n = chk.integer(f"{path}.{alias}", w, 1, 65535)
        if n is not None:
            weights[alias] = n
    missing = [s for s in servers if s not in obj]
    if missing:
        chk.problem(
            path, f"weights must cover every server of the group; missing: {', '.join(missing)}"
        )
    return weights


def _parse_qos(chk: Checker, path: str, obj: Mapping[str, object]) -> FilterConfig | None:
    if len(obj) != 1:
        chk.problem(
            path,
            "expected exactly one of strong_consistency, session_consistency, eventual_consistency",
        )
        return None
    key, value = next(iter(obj.items()))
    level: QosLevel = key.split("_")[0]  # type: ignore[assignment]
    age: int | None = None
    if key == "eventual_consistency" and isinstance(value, dict):
        chk.unknown_keys(f"{path}.{key}", value, frozenset({"age"}))
        age = chk.field(value, f"{path}.{key}", "age", lambda p, v: chk.integer(p, v, 0), None)
    elif (enabled := chk.boolean(f"{path}.{key}", value)) is not True:
        if enabled is False:
            chk.problem(f"{path}.{key}", "expected 1 to enable this service level")
        return None
    return FilterConfig(name="quality_of_service", qos_level=level, qos_age=age)


def _parse_node_groups(
    chk: Checker, path: str, obj: Mapping[str, object], servers: tuple[str, ...]
) -> FilterConfig | None:
    groups: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    if not obj:
        chk.problem(path, "expected at least one node group")
    for gname, body in obj.items():
        gpath = f"{path}.{gname}"
        gobj = chk.mapping(gpath, body)
        if gobj is None:
            continue
        chk.unknown_keys(gpath, gobj, frozenset({"master", "slave"}))
        members: list[tuple[str, ...]] = []
        for role in ("master", "slave"):
            names = gobj.get(role, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                chk.problem(
                    f"{gpath}.{role}", f"expected a list of server names, got {show(names)}"
                )
                members.append(())
                continue
            for n in names:
                if n not in servers:
                    chk.problem(
                        f"{gpath}.{role}",
                        f"no server {n!r} in this group{did_you_mean(n, servers)}",
                    )
            members.append(tuple(names))
        groups[gname] = (members[0], members[1])
    return FilterConfig(name="node_groups", node_groups=groups)
