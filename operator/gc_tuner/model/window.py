"""Time-bounded sample windows: the recent history of one pod (RuntimeSample) or one trace (GCCycle).

A window keeps only what the fits need: samples no older than `window_s` before the newest one, and
never more than `max_samples` (so a misconfigured scrape interval cannot grow memory without bound).

Counter resets split the series. A pod restart sets its cumulative counters back to zero, and a rate
computed across that drop would be negative and meaningless, so each sample carries a segment id that
changes whenever a counter goes down; the fits work per segment (see logic/fit.py).

PodWindow also keeps the two fitted series (live heap in MiB, request counter) as float columns,
missing values as NaN, so a fit reads them as arrays instead of walking sample objects: at fleet
scale the walk cost more than the fit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gc_tuner.model.sample import GCCycle, MiB, RuntimeSample

__all__ = ["GCCycleWindow", "PodWindow"]

# Cumulative counters of RuntimeSample: any of them going down means a new process.
_COUNTERS = ("gc_cycles", "forced_gc_cycles", "requests_total", "gc_cpu_seconds", "total_cpu_seconds")


@dataclass(slots=True)
class _Entry:
    segment: int
    sample: RuntimeSample


_NAN = float("nan")
_SERIES = ("live_mib", "requests")


class _Columns:
    """Time and the fitted series in one growable float buffer (rows: t, then _SERIES); the live
    region is [lo, hi). Reading a series is then a slice copy, not a walk over Python floats."""

    def __init__(self) -> None:
        self._buf = np.empty((1 + len(_SERIES), 16))
        self._lo = self._hi = 0

    def append(self, t: float, live_mib: float, requests: float) -> None:
        if self._hi == self._buf.shape[1]:
            n, cap = self._hi - self._lo, self._buf.shape[1]
            if 2 * n > cap:  # mostly live: grow; else slide the live region to the front
                grown = np.empty((self._buf.shape[0], 2 * cap))
                grown[:, :n] = self._buf[:, self._lo : self._hi]
                self._buf = grown
            else:
                self._buf[:, :n] = self._buf[:, self._lo : self._hi]
            self._lo, self._hi = 0, n
        self._buf[0, self._hi] = t
        self._buf[1, self._hi] = live_mib
        self._buf[2, self._hi] = requests
        self._hi += 1

    def popleft(self) -> None:
        self._lo += 1

    def row(self, k: int) -> np.ndarray:
        return self._buf[k, self._lo : self._hi].copy()


def _estimated_live(sample: RuntimeSample) -> bool:
    return sample.live_heap_bytes is not None and sample.live_heap_estimated


def _check_window(window_s: float, max_samples: int) -> None:
    if not math.isfinite(window_s) or window_s <= 0:
        raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
    if max_samples < 2:
        raise ValueError(f"max_samples must be >= 2, got {max_samples}")


class PodWindow:
    """The last `window_s` seconds of one pod's samples, split into segments at counter resets.

    Samples must arrive in time order; a sample not newer than the newest one is ignored and counted
    in `out_of_order` (a retried scrape must not duplicate a point).
    """

    def __init__(self, window_s: float, *, max_samples: int = 4096) -> None:
        _check_window(window_s, max_samples)
        self.window_s = float(window_s)
        self.max_samples = max_samples
        self.out_of_order = 0
        self.resets = 0  # counter resets seen since creation (including evicted ones)
        self._entries: deque[_Entry] = deque()
        self._segment = 0
        self._last_counters: dict[str, float] = {}  # last non-None value of each counter, this segment
        self._estimated = 0  # entries whose live heap is an estimate
        self._cols = _Columns()  # parallel to _entries: time, then each of _SERIES (NaN = missing)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[RuntimeSample]:
        return (e.sample for e in self._entries)

    @property
    def newest(self) -> RuntimeSample | None:
        return self._entries[-1].sample if self._entries else None

    @property
    def span_s(self) -> float:
        if len(self._entries) < 2:
            return 0.0
        return self._entries[-1].sample.t - self._entries[0].sample.t

    def add(self, sample: RuntimeSample) -> bool:
        """Add a sample; False (and counted) when it is not newer than the newest one."""
        if not math.isfinite(sample.t):
            raise ValueError(f"sample time must be finite, got {sample.t!r}")
        if self._entries and sample.t <= self._entries[-1].sample.t:
            self.out_of_order += 1
            return False
        if self._is_reset(sample):
            self._segment += 1
            self.resets += 1
            self._last_counters.clear()
        for name in _COUNTERS:
            value = getattr(sample, name)
            if value is not None:
                self._last_counters[name] = value
        live = sample.live_heap_bytes
        req = sample.requests_total
        self._entries.append(_Entry(self._segment, sample))
        self._cols.append(sample.t, _NAN if live is None else live / MiB, _NAN if req is None else float(req))
        self._estimated += _estimated_live(sample)
        horizon = sample.t - self.window_s
        while self._entries[0].sample.t < horizon or len(self._entries) > self.max_samples:
            gone = self._entries.popleft().sample
            self._cols.popleft()
            self._estimated -= _estimated_live(gone)
        return True

    @property
    def live_heap_estimated(self) -> bool:
        """Some live-heap figure in the window is an estimate (expvar's NextGC-based one)."""
        return self._estimated > 0

    def series(self, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(times, values) per segment, oldest first, for `live_mib` (MiB) or `requests`; NaN = missing."""
        if name not in _SERIES:
            raise ValueError(f"unknown series {name!r}, expected one of {_SERIES}")
        if not self._entries:
            return []
        t, y = self._cols.row(0), self._cols.row(1 + _SERIES.index(name))
        if self._entries[0].segment == self._entries[-1].segment:
            return [(t, y)]
        seg = np.fromiter((e.segment for e in self._entries), int, len(self._entries))
        cuts = np.flatnonzero(seg[1:] != seg[:-1]) + 1
        return list(zip(np.split(t, cuts), np.split(y, cuts), strict=True))

    def _is_reset(self, sample: RuntimeSample) -> bool:
        for name in _COUNTERS:
            value = getattr(sample, name)
            last = self._last_counters.get(name)
            if value is not None and last is not None and value < last:
                return True
        return False

    def segments(self) -> list[list[RuntimeSample]]:
        """The window's samples split at counter resets, oldest segment first."""
        out: list[list[RuntimeSample]] = []
        current_id: int | None = None
        for e in self._entries:
            if e.segment != current_id:
                out.append([])
                current_id = e.segment
            out[-1].append(e.sample)
        return out


class GCCycleWindow:
    """The last `window_s` seconds (by the cycles' `@t`) of gctrace cycles of one process.

    A cycle number or `@t` that goes down means the traced process restarted (or logs were
    concatenated): that starts a new segment, just as a counter reset does in PodWindow.
    """

    def __init__(self, window_s: float, *, max_samples: int = 4096) -> None:
        _check_window(window_s, max_samples)
        self.window_s = float(window_s)
        self.max_samples = max_samples
        self.resets = 0
        self._entries: deque[tuple[int, float, GCCycle]] = deque()  # (segment, offset t, cycle)
        self._segment = 0
        self._offset = 0.0  # keeps time increasing across restarts, so eviction stays simple

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[GCCycle]:
        return (c for _, _, c in self._entries)

    def add(self, cycle: GCCycle) -> None:
        if self._entries:
            _, last_t, last = self._entries[-1]
            if cycle.n <= last.n or cycle.t < last.t:
                self._segment += 1
                self.resets += 1
                self._offset = last_t
        t = self._offset + cycle.t
        self._entries.append((self._segment, t, cycle))
        horizon = t - self.window_s
        while self._entries[0][1] < horizon or len(self._entries) > self.max_samples:
            self._entries.popleft()

    def segments(self) -> list[list[GCCycle]]:
        out: list[list[GCCycle]] = []
        current_id: int | None = None
        for seg, _, c in self._entries:
            if seg != current_id:
                out.append([])
                current_id = seg
            out[-1].append(c)
        return out
