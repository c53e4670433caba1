"""What one policy's loop remembers between cycles: per-pod windows, and what it put in force.

The state lives in memory. After an operator restart it is rebuilt from what the cluster
remembers: `status.applied` of the GCPolicy and the `gctuner.io/applied` annotation the EnvPatch
rollout writes in the same patch as the env (so a crash between patching and writing status still
knows a change was made and when). Windows start empty again; the cooldown and the applied values
do not, which is what prevents a duplicate rollout after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gc_tuner.model.policy_status import ANNOTATION_APPLIED, AppliedNote, PolicyStatus
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.model.window import GCCycleWindow, PodWindow
from gc_tuner.tuning.env_gate import EnvHalt
from gc_tuner.tuning.guard_records import SafetyState
from gc_tuner.tuning.guard_signals import SignalLog
from gc_tuner.tuning.records import AppliedState, PodReading, PodTarget, parse_rfc3339
from gc_tuner.tuning.safety_status import restore_safety

__all__ = ["PodState", "PolicyState", "ReadsInFlight"]


@dataclass(slots=True)
class PodState:
    window: PodWindow
    trace: GCCycleWindow
    first_seen: float
    restart_count: int = 0
    last_gc_n: int = 0  # newest gctrace cycle already fed, this process
    # Set when the container restarted (a new restartCount): the newest cycle fed from the run that
    # ended. Its log (pods/log?previous=true) still holds the cycles after that one; cleared once read.
    previous_run_gc_n: int | None = None
    last_expvar: RuntimeSample | None = None  # the expvar parser needs it for the PauseNs ring
    promql_qps: float | None = None
    sampled_once: bool = False


@dataclass(slots=True)
class ReadsInFlight:
    """Pod reads that outlasted their cycle (loop/gather.py), and the slots every read shares.

    A read that is not done when its cycle stops waiting goes on in the background; its reading
    counts in a later cycle, and no second read of that pod starts meanwhile. So one hanging pod
    costs its own samples, not every pod's interval.
    """

    tasks: dict[str, asyncio.Task[PodReading]] = field(default_factory=dict)
    slots: asyncio.Semaphore | None = None
    limit: int = 0

    def slots_for(self, limit: int) -> asyncio.Semaphore:
        if self.slots is None or self.limit != limit:
            self.slots, self.limit = asyncio.Semaphore(limit), limit
        return self.slots

    def cancel(self, keep: Iterable[str] = ()) -> None:
        kept = set(keep)
        for name in [n for n in self.tasks if n not in kept]:
            self.tasks.pop(name).cancel()


@dataclass(slots=True)
class PolicyState:
    window_s: float
    pods: dict[str, PodState] = field(default_factory=dict)
    applied: AppliedState | None = None
    last_change_at: float | None = None  # the cooldown clock: time of the last applied change
    failing: set[tuple[str, str, str]] = field(default_factory=set)  # (pod, source, reason) last cycle
    restored: bool = False
    cycles: int = 0
    reads: ReadsInFlight = field(default_factory=ReadsInFlight)
    # The guard's trial, back-offs and windows (tuning/safety.py); keep_s is set from the spec each cycle.
    safety: SafetyState = field(default_factory=lambda: SafetyState(SignalLog(keep_s=3600.0)))
    # EnvPatch stopped after someone else changed its values (tuning/env_gate.py); in status as the
    # Applied condition (reason ExternalChange) with the generation it was written at.
    env_halt: EnvHalt | None = None

    def pod(self, name: str, *, now: float, restart_count: int = 0) -> PodState:
        ps = self.pods.get(name)
        if ps is None or ps.restart_count != restart_count:
            # A restarted container is a new process: its gctrace numbering starts again at 1.
            fresh = PodState(PodWindow(self.window_s), GCCycleWindow(self.window_s), now, restart_count)
            if ps is not None:
                fresh.window = ps.window  # counter resets split the window's segments by themselves
                fresh.trace = ps.trace  # so do gctrace's cycle numbers: the cycles before the crash stay
                fresh.previous_run_gc_n = ps.last_gc_n
                fresh.first_seen = ps.first_seen
                fresh.sampled_once = ps.sampled_once
            self.pods[name] = fresh
            ps = fresh
        return ps

    def resize(self, window_s: float) -> None:
        """A changed windowSeconds: re-window every pod, keeping the samples that still fit."""
        if window_s == self.window_s:
            return
        self.window_s = window_s
        for ps in self.pods.values():
            old, ps.window = ps.window, PodWindow(window_s)
            for s in old:
                ps.window.add(s)
            old_trace, ps.trace = ps.trace, GCCycleWindow(window_s)
            for c in old_trace:
                ps.trace.add(c)

    def track(self, pods: Sequence[PodTarget], window_s: float, *, now: float) -> dict[str, PodState]:
        """Every matched pod's state this cycle (new pods start empty), windows of `window_s`."""
        self.resize(window_s)
        return {p.name: self.pod(p.name, now=now, restart_count=p.restart_count) for p in pods}

    def prune(self, alive: Iterable[str]) -> None:
        keep = set(alive)
        self.reads.cancel(keep)
        self.safety.log.forget(keep)
        for name in list(self.pods):
            if name not in keep:
                del self.pods[name]

    def feed(self, readings: Sequence[PodReading], promql: Mapping[str, float], *, now: float) -> None:
        """The windows step: each reading into its pod's windows and memory, and the guard's windows."""
        self.safety.log.observe(readings, now)
        for r in readings:
            ps = self.pods[r.pod.name]
            if r.sample is not None:
                ps.window.add(r.sample)
                ps.sampled_once = True
            for c in r.cycles:
                ps.trace.add(c)
            if r.expvar is not None:
                ps.last_expvar = r.expvar
            if r.last_gc_n is not None:
                ps.last_gc_n = r.last_gc_n
            if r.previous_read:
                ps.previous_run_gc_n = None
            if r.pod.name in promql:
                ps.promql_qps = promql[r.pod.name]

    def restore(self, status: Mapping[str, Any] | None, annotations: Mapping[str, str] | None = None) -> None:
        """Rebuild `applied` and the cooldown clock from the cluster's memory (once per state)."""
        self.restored = True
        candidates: list[AppliedState] = []
        stored = PolicyStatus.read(status)
        restore_safety(self.safety, stored)
        applied_cond = next((c for c in stored.conditions if c.type == "Applied"), None)
        if applied_cond is not None and applied_cond.reason == "ExternalChange":
            self.env_halt = EnvHalt(applied_cond.observed_generation or 0)
        applied = stored.applied
        t = parse_rfc3339(applied.time) if applied is not None else None
        if applied is not None and t is not None:
            candidates.append(AppliedState(applied.gogc, applied.gomemlimit, applied.method, t, applied.pods))
        # A hand-edited annotation only costs the restart its memory, not correctness.
        note = AppliedNote.read((annotations or {}).get(ANNOTATION_APPLIED))
        nt = parse_rfc3339(note.time) if note is not None else None
        if note is not None and nt is not None:
            candidates.append(AppliedState(note.gogc, note.gomemlimit, "EnvPatch", nt))
        if candidates:
            newest = max(candidates, key=lambda a: a.time)
            self.applied = newest
            self.last_change_at = newest.time
