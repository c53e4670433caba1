"""`gc-tuner analyze --plot`: a PNG timeline of a gctrace log (heap, STW pauses, GC CPU %).

Drawn on a bare matplotlib Figure (Agg canvas), so no pyplot state or display is ever involved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gc_tuner.logic.analysis import CycleTable

__all__ = ["plot_timeline"]


def plot_timeline(table: CycleTable, out: Path, *, title: str = "gctrace timeline") -> None:
    """Write the timeline of `table` to `out` as PNG. Time is the cycles' `@t` (per process)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = table.np("t")
    forced = (table.np("flags") & 1).astype(bool)
    fig = Figure(figsize=(11, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    heap, pause, cpu = fig.subplots(3, 1, sharex=True, height_ratios=(3, 1.5, 1))
    fig.suptitle(title)

    for name, label, style in (
        ("goal_mb", "goal", "--"),
        ("heap_start_mb", "heap at GC start", "-"),
        ("heap_end_mb", "heap at mark end", "-"),
        ("live_mb", "live (marked)", "-"),
    ):
        heap.plot(t, table.np(name), style, label=label, linewidth=1.2, drawstyle="steps-post")
    heap.set_ylabel("MiB")
    heap.legend(loc="upper left", fontsize="small")
    heap.grid(alpha=0.3)

    stw = table.np("stw_ms")
    pause.vlines(t, 0, stw, linewidth=0.8, color="tab:blue", label="STW pause (sweep + mark termination)")
    if forced.any():
        pause.plot(t[forced], stw[forced], "v", color="tab:red", markersize=4, label="forced cycle")
    pause.axhline(0.1, color="tab:gray", linestyle=":", linewidth=1, label="100 µs")
    pause.set_ylabel("ms")
    pause.set_ylim(bottom=0)
    pause.legend(loc="upper left", fontsize="small")
    pause.grid(alpha=0.3)

    cpu.plot(t, table.np("cpu_pct").astype(float), drawstyle="steps-post", color="tab:green")
    cpu.set_ylabel("GC CPU %")
    cpu.set_ylim(bottom=0, top=max(1.0, float(np.max(table.np("cpu_pct"))) * 1.2))
    cpu.set_xlabel("seconds since runtime start (@t)")
    cpu.grid(alpha=0.3)

    fig.savefig(out, format="png")
