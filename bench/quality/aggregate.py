"""From trials to a scenario's result: each trial's figures, each configuration's medians with
their intervals, the oracle fronts, and every contender's distance to them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.quality.contenders import Config
from bench.quality.intervals import Estimate, estimate
from bench.quality.oracle import Distance, FrontPoint, distance, front
from bench.quality.prices import Prices
from bench.quality.trial import TrialRecord
from bench.quality.windows import Figures, convergence_s, figures, lived_through

__all__ = ["ConfigResult", "ScenarioResult", "TrialView", "aggregate", "view"]

GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class TrialView:
    """One trial's derived figures."""

    config: str
    repeat: int
    whole: Figures  # the measured window: warm-up to end
    after: Figures  # from convergence (or warm-up, whichever is later) to end
    converged_s: float | None  # s since start; 0 for settings that never change
    tuner_cores: float  # per-pod production cost added to GC CPU (0 for non-gc-tuner)
    tuner_raw_cores: float | None  # the single `gc-tuner local` process, per second of trial
    oom_kills: int
    died_at_s: float | None
    leak_flagged_at_s: float | None
    load_1m: float

    def cpu(self, f: Figures) -> float | None:
        """GC CPU cores plus the tuner's per-pod cost."""
        return None if f.gc_cores is None else f.gc_cores + self.tuner_cores

    def cost_per_hour(self, prices: Prices) -> float | None:
        """The measured window's price-weighted cost as a rate, so that a trial cut short by an OOM
        kill is not cheaper for having run less."""
        cpu = self.cpu(self.whole)
        if cpu is None or self.whole.mem_avg_bytes is None or self.whole.seconds <= 0:
            return None
        return prices.cost(cpu, self.whole.mem_avg_bytes / GiB, 3600)

    @property
    def lived(self) -> bool:
        """Ran to the end: neither OOM-killed nor dead before the run ended."""
        return lived_through(self.died_at_s, self.oom_kills)


def view(r: TrialRecord, c: Config, per_pod_cores: float, lead_s: float) -> TrialView:
    whole = figures(r, r.warmup_s)
    conv: float | None = 0.0
    if c.kind != "static":
        conv = convergence_s(r.gogc)
    after = figures(r, max(r.warmup_s, conv if conv is not None else r.warmup_s))
    raw = None
    if r.tuner_cpu_s is not None and r.duration_s > 0:
        raw = r.tuner_cpu_s / (r.duration_s + lead_s)
    return TrialView(
        config=c.key,
        repeat=r.repeat,
        whole=whole,
        after=after,
        converged_s=conv,
        tuner_cores=per_pod_cores if c.kind == "gc-tuner" else 0.0,
        tuner_raw_cores=raw,
        oom_kills=r.oom_kills,
        died_at_s=r.died_at_s,
        leak_flagged_at_s=r.leak_flagged_at_s,
        load_1m=r.load_1m,
    )


@dataclass
class ConfigResult:
    config: Config
    trials: list[TrialView] = field(default_factory=list)
    unavailable: str | None = None  # why it was not run (listed, never dropped)
    stats: dict[str, Estimate | None] = field(default_factory=dict)
    dist_avg: Distance | None = None  # whole window, time-averaged memory
    dist_after: Distance | None = None  # after convergence, time-averaged memory
    dist_peak: Distance | None = None  # whole window, peak memory

    def get(self, name: str) -> Estimate | None:
        return self.stats.get(name)

    @property
    def oom_kills(self) -> int:
        return sum(t.oom_kills for t in self.trials)

    @property
    def lived(self) -> bool:
        """Every trial ran to the end: a setting anyone could run for the whole scenario."""
        return all(t.lived for t in self.trials)


@dataclass
class ScenarioResult:
    name: str
    description: str
    window_s: int  # the tuners' fit window (convergence goals count in these)
    configs: dict[str, ConfigResult]
    limit_bytes: int = 1 << 30
    front_avg: list[FrontPoint] = field(default_factory=list)
    front_peak: list[FrontPoint] = field(default_factory=list)
    memory_measured: bool = True
    notes: list[str] = field(default_factory=list)


_METRICS: dict[str, Callable[[TrialView], float | None]] = {
    "gc": lambda t: t.cpu(t.whole),
    "gc_only": lambda t: t.whole.gc_cores,
    "gc_idle": lambda t: t.whole.gc_idle_cores,
    "gc_after": lambda t: t.cpu(t.after),
    "process": lambda t: t.whole.process_cores,
    "mem_avg": lambda t: t.whole.mem_avg_bytes,
    "mem_avg_after": lambda t: t.after.mem_avg_bytes,
    "mem_peak": lambda t: None if t.whole.mem_peak_bytes is None else float(t.whole.mem_peak_bytes),
    "p50": lambda t: t.whole.p50_ms,
    "p99": lambda t: t.whole.p99_ms,
    "converged": lambda t: t.converged_s,
    "died_at": lambda t: t.died_at_s,
    "leak_flagged": lambda t: t.leak_flagged_at_s,
    "tuner_raw": lambda t: t.tuner_raw_cores,
}


def _on_front(cr: ConfigResult) -> bool:
    """A sweep setting joins the front only when every trial ran to the end: one that was OOM-killed
    is no static setting anyone could run, and its figures cover a shorter window than the others'
    (burst, GOGC=400: 0 GC CPU over the 1.7 s one trial lived into the window; diurnal, GOGC=200:
    killed when the cache grew). In leak every setting dies, so leak has no front."""
    g = cr.get("gc")
    return cr.config.sweep and g is not None and cr.lived


def _front(results: Sequence[ConfigResult], mem: str) -> list[FrontPoint]:
    pts = []
    for cr in results:
        m, g = cr.get(mem), cr.get("gc")
        if _on_front(cr) and m is not None and g is not None:
            pts.append(FrontPoint(cr.config.key, m.median, g.median))
    return front(pts)


def _left_off(results: Sequence[ConfigResult]) -> list[str]:
    out = []
    for cr in results:
        if not cr.config.sweep or cr.get("gc") is None or _on_front(cr):
            continue
        dead = sum(not t.lived for t in cr.trials)
        out.append(
            f"{cr.config.label} is left off the front: killed before the end in {dead} of its "
            f"{len(cr.trials)} trials"
        )
    return out


def aggregate(
    name: str, description: str, window_s: int, configs: dict[str, ConfigResult], limit_bytes: int
) -> ScenarioResult:
    """Fill every configuration's estimates, draw the fronts, measure the distances."""
    for i, cr in enumerate(configs.values()):
        cr.stats = {k: estimate([f(t) for t in cr.trials], seed=i) for k, f in _METRICS.items()}
    res = ScenarioResult(name, description, window_s, configs, limit_bytes)
    res.memory_measured = any(cr.get("mem_avg") is not None for cr in configs.values())
    res.front_avg = _front(list(configs.values()), "mem_avg")
    res.front_peak = _front(list(configs.values()), "mem_peak")
    res.notes += _left_off(list(configs.values()))
    for cr in configs.values():
        if not cr.config.contender:
            continue
        for attr, fr, mem, gc in (
            ("dist_avg", res.front_avg, "mem_avg", "gc"),
            ("dist_after", res.front_avg, "mem_avg_after", "gc_after"),
            ("dist_peak", res.front_peak, "mem_peak", "gc"),
        ):
            m, g = cr.get(mem), cr.get(gc)
            if m is not None and g is not None and fr:
                setattr(cr, attr, distance(fr, m.median, g.median))
    return res
