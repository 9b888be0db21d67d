"""Plot files for DVC (CSV tables with an x column) and PNG renderings of the same tables."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from seqlab.core.storage import atomic_path, write_text


def write_csv(path: str | Path, rows: Sequence[dict]) -> None:
    if not rows:
        write_text(path, "")
        return
    fields = list(rows[0])
    for row in rows[1:]:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def line_plot(path: str | Path, rows: Sequence[dict], x: str, ys: Sequence[str], title: str,
              ylabel: str = "", logy: bool = False, vline: float | None = None) -> None:
    """Render columns `ys` of `rows` against `x` to a PNG (matplotlib's Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    xs = [r[x] for r in rows]
    for y in ys:
        pts = [(a, r[y]) for a, r in zip(xs, rows) if r.get(y) is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=y)
    if vline is not None:
        ax.axvline(vline, color="grey", linestyle="--", linewidth=1, label="trained range limit")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
