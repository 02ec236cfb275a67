"""msplugin's benchmark suite: one run against a sandbox topology, a table, bench/results.json.

    python bench/suite.py [--config FILE --group G] [--rounds 45] [--statements 1000] [--quick]

Without --config it starts its own 1 primary + 2 replica sandbox and removes it afterwards.
Every msplugin figure is measured in the same run as its raw PyMySQL baseline. Sections:
throughput.py (routed SELECT 1 and primary-key SELECT against raw PyMySQL), instructions.py
(client instructions per statement, under valgrind), the classifier, consistency_cost.py,
state_cost.py, pool_cost.py (pool checkout+return, facade connect+close), footprint.py (memory
per connection), scaling.py (1/2/4 client processes, 1 versus 2 replicas), guard_cost.py (the
one-thread guard, under valgrind), background.py (CPU of the health checks and replica monitor)
and fault_cost.py (a hung server, default settings). With matplotlib
installed (the "plot" extra) it also draws bench/results.png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import timeit
from pathlib import Path
from typing import Any

from background import background
from background import report as report_background
from consistency_cost import consistency_cost
from fault_cost import fault_cost
from fault_cost import report as report_fault_cost
from footprint import footprint
from guard_cost import guard_cost
from instructions import instructions, round_trips
from pool_cost import pool_cost
from pool_cost import report as report_pool_cost
from scaling import scaling
from state_cost import report as report_state_cost
from state_cost import state_cost
from throughput import throughput

from msplugin.classify import _classify, classify
from msplugin.sandbox import GROUP, Sandbox

SHORT = "SELECT id, name, email, created_at FROM users WHERE id = %s AND status = %s ORDER BY id LIMIT 1"
# A 4 KB statement: a long IN list, as ORMs generate (still below the 4096-character cache limit).
LONG = "SELECT id, name FROM users WHERE id IN (" + ", ".join(["%s"] * 1000) + ") AND active = 1"
LONG = LONG[: LONG.rindex(", %s", 0, 4000)] + ") AND active = 1"


def classifier_cost() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, sql in (("short", SHORT), ("4kb", LONG)):
        classify(sql)
        n = 1_000_000
        cached = min(timeit.repeat(lambda s=sql: classify(s), number=n, repeat=3)) / n * 1e6
        m = 20_000 if label == "short" else 2_000
        uncached = (
            min(timeit.repeat(lambda s=sql: _classify(s, "default"), number=m, repeat=3)) / m * 1e6
        )
        out[label] = {"chars": len(sql), "cached_us": cached, "uncached_us": uncached}
    return out


def _row(name: str, value: str, target: str = "", baseline: str = "") -> None:
    print(f"  {name:<46} {value:>22}  {baseline:<26} {target}")


def report(r: dict[str, Any]) -> None:
    print()
    print("msplugin benchmark suite (every msplugin figure with its baseline from the same run)")
    print(f"throughput loops: {r['throughput']['cpus']}")
    for key, label in (("select_1", "SELECT 1"), ("select_pk", "primary-key SELECT (1 row)")):
        t = r["throughput"][key]
        print(
            f"{label} on {t['server']}: {t['rounds']} interleaved rounds x {t['statements_per_round']}"
        )
        q1, q2, q3 = t["ratio_quartiles"]
        _row(
            "throughput msplugin / PyMySQL, round median",
            f"{q2:.3f} ({q1:.2f}-{q3:.2f})",
            "target >= 0.97",
            f"{t['msplugin_tps_median']:.0f} vs {t['raw_pymysql_tps_median']:.0f} stmt/s",
        )
        _row("  the same, summed times", f"{t['ratio_total']:.3f}")
        c1, c2, c3 = t["control_quartiles"]
        _row(
            "control PyMySQL / PyMySQL, round median",
            f"{c2:.3f} ({c1:.2f}-{c3:.2f})",
            "",
            f"summed {t['control_ratio_total']:.3f}",
        )
        _row(
            "client CPU per statement",
            f"{t['msplugin_client_cpu_us_per_stmt']:.1f} us",
            "",
            f"PyMySQL {t['raw_client_cpu_us_per_stmt']:.1f}, {t['control_client_cpu_us_per_stmt']:.1f} us",
        )
    i = r["instructions"]
    if "skipped" in i:
        print(f"client instructions per statement: skipped: {i['skipped']}")
    else:
        print(f"client instructions per statement (valgrind, {i['statements']} statements)")
        for key, label, target in (
            ("select_1", "SELECT 1 on a replica", "target <= 1.035"),
            ("select_pk", "primary-key SELECT on a replica", "target <= 1.035"),
            ("insert", "autocommit INSERT on the master", "target <= 1.08"),
            ("autocommit_off_unit", "autocommit off: SELECT, UPDATE, COMMIT", "target <= 1.06"),
            ("session_write_read", "session: INSERT, then SELECT", "target <= 1.25"),
            ("sqlalchemy_core_unit", "SQLAlchemy Core begin/SELECT/UPDATE", ""),
            # The baseline of these two is raw aiomysql on the same replica.
            ("aio_select_1", "msplugin.aio SELECT 1 / aiomysql", "target <= 1.05"),
            ("aio_select_pk", "msplugin.aio primary-key SELECT / aiomysql", "target <= 1.05"),
        ):
            if key not in i:
                continue
            _row(
                f"{label}, msplugin / PyMySQL",
                f"{i[key]['ratio']:.3f}",
                target,
                f"{i[key]['msplugin_per_stmt']:.0f} vs {i[key]['raw_pymysql_per_stmt']:.0f}",
            )
            if "reads" in i[key]:
                print("    its reads:", ", ".join(f"{k} {v}" for k, v in i[key]["reads"].items()))
        for key, label, target in (
            ("optimistic_read_only_unit", "read-only unit, optimistic / master", "target <= 1.05"),
            ("optimistic_replayed_unit", "replayed unit, optimistic / master", ""),
        ):
            if key in i:
                _row(
                    label,
                    f"{i[key]['ratio_to_master']:.3f}",
                    target,
                    f"{i[key]['msplugin_per_stmt']:.0f} vs {i[key]['master_per_stmt']:.0f}; "
                    f"PyMySQL {i[key]['raw_pymysql_per_stmt']:.0f}",
                )
        if "round_trips" in r:
            print(
                "    statements per unit:",
                ", ".join(f"{k} {v:g}" for k, v in r["round_trips"].items()),
            )
    print("classifier, per statement")
    for label, c in r["classifier"].items():
        _row(f"{label} ({c['chars']} chars), cached", f"{c['cached_us']:.3f} us", "target <= 1 us")
        _row(f"{label} ({c['chars']} chars), uncached", f"{c['uncached_us']:.2f} us")
    for label, c in r["consistency"].items():
        e, s = c["eventual"], c["session"]
        print(f"session consistency, reads {label.replace('_', ' ')}")
        _row(
            "read latency session / eventual",
            f"{c['latency_ratio_session_eventual']:.2f}",
            "",
            f"{s['read_us_median']:.0f} vs {e['read_us_median']:.0f} us",
        )
        _row(
            "reads on replicas / stale (session, eventual)",
            f"{s['replica_share']:.0%}/{s['stale']}, {e['replica_share']:.0%}/{e['stale']}",
        )
    report_state_cost(r["session_state"])
    report_pool_cost(r["pool"])
    f = r["footprint"]
    print(f"memory per connection (Python heap, {f['connections']} live connections)")
    _row("facade, before its first statement", f"{f['facade_lazy_bytes'] / 1024:.1f} KiB")
    _row(
        "facade holding one replica connection",
        f"{f['facade_one_backend_bytes'] / 1024:.1f} KiB",
        "",
        f"PyMySQL {f['raw_pymysql_bytes'] / 1024:.1f} KiB",
    )
    g = r["guard"]
    if "skipped" not in g:
        _row(
            "one-thread guard, instructions per statement",
            f"{g['flag']:.0f}",
            "target < 100",
            f"a list.pop() token: {g['token']:.0f}",
        )
    report_background(r["background"])
    report_fault_cost(r["faults"])
    s = r["scaling"]
    print(f"read throughput, primary-key SELECT, statements/s over {s['seconds']} s")
    print(f"  {'client processes':<20}" + "".join(f"{p:>10}" for p in s["replicas_1"]))
    for replicas in (1, 2):
        row = s[f"replicas_{replicas}"]
        print(f"  {f'{replicas} replica(s)':<20}" + "".join(f"{v:>10.0f}" for v in row.values()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config")
    ap.add_argument("--group", default=GROUP)
    ap.add_argument("--rounds", type=int, default=45)
    ap.add_argument("--statements", type=int, default=1000)
    args = ap.parse_args()
    sandbox = None
    tmp = tempfile.TemporaryDirectory(prefix="msplugin-bench-")
    config = args.config
    if config is None:
        sandbox = Sandbox.up(Path(tmp.name) / "sandbox")
        config = str(sandbox.config_path)
    try:
        results = {
            "throughput": throughput(
                config,
                args.group,
                args.rounds,
                args.statements,
                [n.pid for n in sandbox.nodes if n.pid] if sandbox is not None else [],
            ),
            "instructions": instructions(config, args.group),
            "round_trips": round_trips(config, args.group),
            "classifier": classifier_cost(),
            "consistency": consistency_cost(config, args.group, n=1000),
            "session_state": state_cost(config, args.group, 7, 3000),
            "pool": pool_cost(config, args.group),
            "footprint": footprint(config, args.group),
            "scaling": scaling(config, args.group),
            "guard": guard_cost(),
            "background": background(config, args.group),
            "faults": fault_cost(sandbox, config, args.group),  # last: it stops servers
        }
    finally:
        if sandbox is not None:
            sandbox.down()
        tmp.cleanup()
    report(results)
    out = Path(__file__).with_name("results.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out}")
    try:
        from plot import plot
    except ImportError:
        print("no plot: install the 'plot' extra (matplotlib) for bench/results.png")
    else:
        print(f"written: {plot(results, out.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
