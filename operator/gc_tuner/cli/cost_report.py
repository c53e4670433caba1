"""The Cost strategy's answer as `gc-tuner recommend --strategy cost` and `gc-tuner analyze --strategy cost`
print it: one JSON document and one table, so the two commands read alike and can be compared."""

from __future__ import annotations

from typing import Any

import click

from gc_tuner.logic.cost_model import CostParams, CostResult, PodCost

__all__ = ["cost_doc", "echo_cost", "recommend_command_for"]


def cost_doc(r: CostResult, pod: PodCost, p: CostParams) -> dict[str, Any]:
    """The figures behind the value, full precision (floats round-trip through JSON exactly)."""
    return {
        "strategy": "cost",
        "gogc": r.gogc,
        "uncapped_gogc": r.optimal_gogc,
        "target_gogc": r.target_gogc,
        "current_gogc": r.current_gogc,
        "budget_cap_gogc": r.budget_cap,
        "fit_relative_error": r.fit_error,
        "step_share": r.step_share,
        "alloc_mib_per_s": pod.alloc_mib_per_s,
        "alloc_se": pod.alloc_se,
        "mark_ms_per_mib": pod.mark_ms_per_mib,
        "mark_se": pod.mark_se,
        "live_stacks_globals_bytes": pod.base_bytes,
        "cpu_per_core_hour": p.cpu_per_core_hour,
        "memory_per_gib_hour": p.memory_per_gib_hour,
        "currency": p.currency,
        "predicted_gc_cpu_cores": r.gc_cpu_cores,
        "predicted_heap_overhead_bytes": r.heap_overhead_bytes,
        "predicted_monthly_saving": r.monthly_saving,
        "clamps": list(r.clamps),
        "explanation": r.explanation,
    }


def recommend_command_for(doc: dict[str, Any], p: CostParams) -> str:
    """The `gc-tuner recommend --strategy cost` line that gives the same answer offline."""
    return (
        f"gc-tuner recommend --strategy cost --alloc-rate {doc['alloc_mib_per_s']!r} "
        f"--alloc-rate-se {doc['alloc_se']!r} --mark-cost {doc['mark_ms_per_mib']!r} "
        f"--mark-cost-se {doc['mark_se']!r} --live {doc['live_stacks_globals_bytes']} "
        f"--current-gogc {doc['current_gogc']} --cpu-price {p.cpu_per_core_hour!r} "
        f"--memory-price {p.memory_per_gib_hour!r} --currency {p.currency} "
        f"--max-fit-error {p.max_fit_error * 100:g} --min-gogc {p.gogc_min} --max-gogc {p.gogc_max}"
    )


def echo_cost(doc: dict[str, Any], indent: str = "") -> None:
    """The table form: the value, the fitted figures, the predictions, the explanation."""
    cur = doc["currency"]
    err = doc["fit_relative_error"]
    rows = [
        ("GOGC", f"{doc['gogc']}"),
        ("a", f"{doc['alloc_mib_per_s']:.4g} MiB/s (± {doc['alloc_se']:.2g})"),
        ("c", f"{doc['mark_ms_per_mib']:.4g} CPU-ms per MiB of L+S+G (± {doc['mark_se']:.2g})"),
        ("L+S+G", f"{doc['live_stacks_globals_bytes'] / (1 << 20):.1f} MiB"),
        ("fit error", "-" if err is None else f"{err:.1%} (step share {doc['step_share']:.0%})"),
        ("GC CPU", f"{doc['predicted_gc_cpu_cores']:.4g} cores at GOGC {doc['gogc']}"),
        ("heap overhead", f"{doc['predicted_heap_overhead_bytes'] / (1 << 20):.1f} MiB"),
        ("saving", f"{doc['predicted_monthly_saving']:+.2f} {cur}/month against GOGC=100"),
    ]
    for k, v in rows:
        click.echo(f"{indent}{k:<14}{v}")
    click.echo(f"{indent}{doc['explanation']}")
