"""bench/results.png from the suite's results: throughput ratios and read scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: write a file
import matplotlib.pyplot as plt


def plot(r: dict[str, Any], out: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = ["SELECT 1", "primary-key SELECT"]
    keys = ("select_1", "select_pk")
    # Round medians with their quartiles, msplugin beside the PyMySQL / PyMySQL control.
    for shift, field, color, name in (
        (-0.2, "ratio_quartiles", "#4c72b0", "msplugin / PyMySQL"),
        (0.2, "control_quartiles", "#999999", "PyMySQL / PyMySQL (noise)"),
    ):
        q = [r["throughput"][k][field] for k in keys]
        mid = [x[1] for x in q]
        err = [[x[1] - x[0] for x in q], [x[2] - x[1] for x in q]]
        ax1.bar([i + shift for i in range(2)], mid, 0.4, yerr=err, color=color, label=name)
    ratios = [r["throughput"][k]["ratio_quartiles"][1] for k in keys]
    ax1.set_xticks(range(2), labels)
    ax1.axhline(1.0, color="grey", linewidth=0.8)
    ax1.axhline(0.97, color="#c44e52", linestyle="--", linewidth=1, label="target 0.97")
    ax1.set_ylim(0.8, 1.16)
    ax1.set_ylabel("throughput, msplugin / raw PyMySQL")
    ax1.set_title("Routed reads against raw PyMySQL (same replica)")
    ax1.legend(loc="upper center", ncol=2, fontsize=8)
    for x, v in enumerate(ratios):
        ax1.text(x - 0.2, 0.81, f"{v:.3f}", ha="center", color="white")
    s = r["scaling"]
    for replicas, style in ((1, "o-"), (2, "s-")):
        row = s[f"replicas_{replicas}"]
        ax2.plot([int(p) for p in row], list(row.values()), style, label=f"{replicas} replica(s)")
    ax2.set_xlabel("client processes")
    ax2.set_ylabel("statements / s")
    ax2.set_xticks([1, 2, 4])
    ax2.set_title("Read throughput (clients and servers share 2 cores)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
