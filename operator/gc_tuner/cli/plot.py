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

    t, starts = _timeline(table.np("t"), table.np("segment"))
    forced = (table.np("flags") & 1).astype(bool)
    fig = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    heap, pause, cpu = fig.subplots(3, 1, sharex=True, height_ratios=(3, 1.5, 1))
    fig.suptitle(title)
    legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": "small", "borderaxespad": 0}

    for name, label, style in (
        ("goal_mb", "goal", "--"),
        ("heap_start_mb", "heap at GC start", "-"),
        ("heap_end_mb", "heap at mark end", "-"),
        ("live_mb", "live (marked)", "-"),
    ):
        heap.plot(t, table.np(name), style, label=label, linewidth=1.2, drawstyle="steps-post")
    heap.set_ylabel("MiB")
    heap.set_ylim(bottom=0)
    heap.grid(alpha=0.3)

    stw = table.np("stw_ms")
    pause.vlines(t, 0, stw, linewidth=0.8, color="tab:blue", label="STW pause (sweep + mark termination)")
    if forced.any():
        pause.plot(t[forced], stw[forced], "v", color="tab:red", markersize=4, label="forced cycle")
    pause.axhline(0.1, color="tab:gray", linestyle=":", linewidth=1, label="100 µs")
    pause.set_ylabel("STW pause (ms)")
    pause.set_ylim(bottom=0)
    pause.grid(alpha=0.3)

    cpu_pct = table.np("cpu_pct").astype(float)
    cpu.plot(t, cpu_pct, drawstyle="steps-post", color="tab:green", label="GC CPU % since start (P%)")
    cpu.set_ylabel("GC CPU %")
    # A little below 0, so a log whose GC CPU stays at 0% shows its line instead of hiding it in the axis.
    top = max(1.0, float(np.max(cpu_pct)) * 1.2)
    cpu.set_ylim(bottom=-0.05 * top, top=top)
    cpu.grid(alpha=0.3)

    xlabel = "seconds since runtime start (@t)"
    if len(starts):
        xlabel += f"; {len(starts) + 1} processes placed end to end"
        for ax in (heap, pause, cpu):
            for x in starts:
                ax.axvline(x, color="black", linestyle="--", linewidth=0.8)
        heap.plot([], [], "k--", linewidth=0.8, label="process restart")
    cpu.set_xlabel(xlabel)
    for ax in (heap, pause, cpu):
        ax.legend(**legend)

    fig.savefig(out, format="png")


def _timeline(t: np.ndarray, segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times on one axis: each process after the first continues where the previous one ended (its
    `@t` restarts at 0). Returns the times and where each later process starts."""
    if len(t) == 0 or segment[-1] == 0:
        return t, np.empty(0)
    out = t.astype(float, copy=True)
    starts = []
    offset = 0.0
    for s in range(1, int(segment[-1]) + 1):
        idx = np.flatnonzero(segment == s)
        if not len(idx):
            continue
        offset = float(out[idx[0] - 1])
        out[idx] += offset
        starts.append(offset)
    return out, np.array(starts)
