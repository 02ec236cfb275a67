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
    ratios = [r["throughput"][k]["ratio_total"] for k in ("select_1", "select_pk")]
    ax1.bar(labels, ratios, color="#4c72b0")
    ax1.axhline(1.0, color="grey", linewidth=0.8)
    ax1.axhline(0.97, color="#c44e52", linestyle="--", linewidth=1, label="target 0.97")
    ax1.set_ylim(0.8, 1.1)
    ax1.set_ylabel("throughput, msplugin / raw PyMySQL")
    ax1.set_title("Routed reads against raw PyMySQL (same replica)")
    ax1.legend(loc="lower right")
    for x, v in enumerate(ratios):
        ax1.text(x, v + 0.005, f"{v:.3f}", ha="center")
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
