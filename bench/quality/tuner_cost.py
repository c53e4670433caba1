"""gc-tuner's own CPU as production pays it: per pod, at the default 15 s interval, measured by
bench.fleet (bench/results/fleet.json). A trial's single `gc-tuner local` process at the bench's
3 s interval costs far more per pod than one operator sampling thousands of pods; both are
reported, and the per-pod figure is what is added to a gc-tuner contender's GC CPU."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PerPodCost", "per_pod_cost"]


@dataclass(frozen=True, slots=True)
class PerPodCost:
    cores: float  # CPU cores per tuned pod
    source: str


def per_pod_cost(fleet_json: Path) -> PerPodCost | None:
    """The highest per-pod CPU among bench.fleet's runs at a 15 s interval with QPS from the agent
    (the default setup); None when the file has none."""
    try:
        doc = json.loads(fleet_json.read_text())
    except (OSError, ValueError):
        return None
    rows = [
        r
        for r in doc.get("fleet", [])
        if r.get("interval_s") == 15 and r.get("qps_source") == "agent" and r.get("pods", 0) > 0
    ]
    if not rows:
        return None
    worst = max(rows, key=lambda r: r["cpu_cores"] / r["pods"])
    cores = worst["cpu_cores"] / worst["pods"]
    return PerPodCost(
        cores,
        f"{fleet_json.name}: {worst['cpu_cores']:.3f} cores for {worst['pods']} pods at 15 s "
        f"(the highest per-pod figure of its {len(rows)} default-setup runs) = {cores * 1e3:.3f} "
        "millicores per pod",
    )
