"""The demo's live view: a panel redrawn in place on a terminal, plain lines everywhere else.

Rendering is a pure function of a `ViewState` (tests call `render_panel` directly); only `Screen`
writes to the terminal, with plain ANSI escapes (no curses, no extra dependencies).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Screen", "ViewState", "render_panel", "sparkline"]

_BARS = "▁▂▃▄▅▆▇█"
RESET, BOLD, DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
GREEN, YELLOW, RED, CYAN, MAGENTA = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[36m", "\x1b[35m"


def sparkline(values: list[float], width: int = 24, *, floor: float | None = 0.0) -> str:
    """The last `width` values as block characters, scaled from `floor` (None: their min) to their max."""
    vals = values[-width:]
    if not vals:
        return ""
    lo = min(vals) if floor is None else min(floor, *vals)
    hi = max(vals)
    span = hi - lo
    if span <= 1e-12:
        return _BARS[3] * len(vals)
    return "".join(_BARS[min(7, int((v - lo) / span * 7.999))] for v in vals)


@dataclass
class ViewState:
    target: str
    mode: str  # "dry-run" | "enforce"
    phase: str = ""
    phase_note: str = ""
    phase_index: int = 0
    phases: int = 3
    phase_left_s: float = 0.0
    phase_len_s: float = 1.0
    qps: deque[float] = field(default_factory=lambda: deque(maxlen=60))
    heap_mib: deque[float] = field(default_factory=lambda: deque(maxlen=60))
    gogc_hist: deque[float] = field(default_factory=lambda: deque(maxlen=60))
    last: dict[str, Any] = field(default_factory=dict)
    history: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    noted_rec: int | None = None  # the last recommendation written to the history
    started: float = field(default_factory=time.time)

    def note(self, text: str) -> None:
        self.history.append(f"{time.strftime('%H:%M:%S')}  {text}")


def _c(on: bool, color: str, text: str) -> str:
    return f"{color}{text}{RESET}" if on else text


def _bar(fraction: float, width: int = 16) -> str:
    full = max(0, min(width, round(fraction * width)))
    return "█" * full + "░" * (width - full)


def render_panel(v: ViewState, *, color: bool = True, width: int = 100) -> list[str]:
    """The whole panel as lines (no trailing newlines)."""
    d = v.last
    out = _header(v, color)
    out.append("")
    out += _trends(v, color, width)
    out.append(f" {'GC':<12}" + "   ".join(_gc_figures(d.get("gc") or {})))
    out.append(_gogc_line(v, color))
    if d.get("decision"):
        out.append(f" {'decision':<12}{d['decision']}"[: width + 20])
    if d.get("applied"):
        out.append(f" {'applied':<12}{_c(color, GREEN, d['applied'])}")
    out.append(f" {'conditions':<12}" + "  ".join(_condition_marks(d.get("conditions") or {}, color)))
    for f in d.get("failures") or []:
        out.append(_c(color, RED, f"   ! {f}"))
    out.append("")
    out.append(_c(color, BOLD, " what happened"))
    out.extend(f"  {h}" for h in v.history)
    out.append("")
    out.append(_c(color, DIM, " Ctrl-C stops (the workload prints its summary)"))
    return out


def _header(v: ViewState, color: bool) -> list[str]:
    """The title with the mode, and the phase with its progress."""
    mode = _c(color, RED + BOLD if v.mode == "enforce" else CYAN + BOLD, v.mode.upper())
    done = 1 - (v.phase_left_s / v.phase_len_s if v.phase_len_s else 0)
    return [
        _c(color, BOLD, " gc-tuner demo") + f" — the operator's tuning loop on {v.target}    mode {mode}",
        f" phase {v.phase_index}/{v.phases}  {_c(color, MAGENTA + BOLD, v.phase.ljust(7))} {_bar(done)} "
        f"{v.phase_left_s:4.0f}s left   {v.phase_note}",
    ]


def _trends(v: ViewState, color: bool, width: int) -> list[str]:
    """The QPS and live-heap lines: latest value, sparkline and, for the heap, its fit."""
    d = v.last
    qps, slope, r2 = d.get("qps"), d.get("slope"), d.get("r2")
    q = f"{qps:9.1f}" if qps is not None else "        -"
    heap = f"{v.heap_mib[-1]:7.1f} MiB" if v.heap_mib else "        -  "
    sl = (
        f"slope {slope:+.3f} MB/s  r² {r2:.2f}"
        if slope is not None and r2 is not None
        else (d.get("why") or "")
    )
    return [
        f" {'QPS':<12}{q}   {_c(color, GREEN, sparkline(list(v.qps)))}",
        f" {'live heap':<12}{heap} {_c(color, YELLOW, sparkline(list(v.heap_mib)))}  {sl}"[: width + 40],
    ]


def _gc_figures(gc: dict[str, Any]) -> list[str]:
    """Only the figures the source reported: a missing one is left out, not shown as 0."""
    figures = []
    if gc.get("cycles") is not None:
        figures.append(f"cycles {gc['cycles']}")
    if gc.get("cpu_pct") is not None:
        figures.append(f"GC CPU {gc['cpu_pct']:.1f}%")
    if gc.get("p99_ms") is not None:
        figures.append(f"pause p99 {gc['p99_ms']:.3f} ms")
    return figures


def _gogc_line(v: ViewState, color: bool) -> str:
    d = v.last
    now_gogc = d.get("gogc_now")
    rec = d.get("recommended")
    recs = f"recommended {_c(color, BOLD, str(rec))}" if rec is not None else "recommended -"
    factors = d.get("factors") or ""
    return (
        f" {'GOGC':<12}now {now_gogc if now_gogc is not None else '-':<5} {recs}   {factors}   "
        f"{_c(color, CYAN, sparkline(list(v.gogc_hist)))}"
    )


def _condition_marks(conds: dict[str, str], color: bool) -> list[str]:
    """A mark per reported condition, green when it is good news (for the alarms: when False)."""
    marks = []
    for name in ("Ready", "Sampling", "Recommending", "Applied", "LeakSuspected", "Degraded"):
        st = conds.get(name)
        if st is None:
            continue
        alarm = name in ("LeakSuspected", "Degraded")
        good = (st == "True") != alarm
        tint = GREEN if good else (RED if alarm else DIM)
        sym = {"True": "✓", "False": "✗"}.get(st, "?")
        marks.append(_c(color, tint, f"{name} {sym}"))
    return marks


class Screen:
    """Redraws the panel in place on a TTY; elsewhere prints each new history line once."""

    def __init__(self, stream: TextIO = sys.stdout, *, force_plain: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty() and not force_plain
        self._printed = 0

    def draw(self, v: ViewState) -> None:
        if not self.tty:
            return
        width = shutil.get_terminal_size((100, 30)).columns
        lines = render_panel(v, color=True, width=width)
        # Home the cursor and clear below: flicker-free enough at one frame per cycle.
        self.stream.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        if not self.tty:
            print(text, file=self.stream, flush=True)

    def enter(self) -> None:
        if self.tty:
            self.stream.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear once
            self.stream.flush()

    def leave(self) -> None:
        if self.tty:
            self.stream.write("\x1b[?25h\n")
            self.stream.flush()
