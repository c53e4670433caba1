"""The prices the diurnal goal weighs GC CPU and memory-time with: the Cost strategy's defaults.

They are read from the policy model (`strategy.cost.cpuPerCoreHourMilli`,
`strategy.cost.memoryPerGiBHourMilli`) so the bench judges Cost at exactly the prices it tunes
for. Until the model has them the bench uses PLACEHOLDER_PRICES and every report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PLACEHOLDER_PRICES", "Prices", "default_prices"]


@dataclass(frozen=True, slots=True)
class Prices:
    cpu_per_core_hour: float  # any currency unit, the same for both
    memory_per_gib_hour: float
    source: str

    @property
    def ratio(self) -> float:
        """CPU core-hour price over GiB-hour price."""
        return self.cpu_per_core_hour / self.memory_per_gib_hour

    def scaled(self, cpu_factor: float) -> Prices:
        """The same memory price with CPU `cpu_factor` times dearer (the ratio ×3 and ÷3 checks)."""
        return Prices(
            self.cpu_per_core_hour * cpu_factor,
            self.memory_per_gib_hour,
            f"{self.source} ×{cpu_factor:g} CPU",
        )

    def cost(self, cpu_cores: float, memory_gib: float, seconds: float) -> float:
        return (self.cpu_per_core_hour * cpu_cores + self.memory_per_gib_hour * memory_gib) * seconds / 3600


# Used only while operator/gc_tuner/model/policy.py has no strategy.cost: on-demand prices of a
# general-purpose cloud VM split per core-hour and per GiB-hour (the usual ratio is about 7.5:1).
PLACEHOLDER_PRICES = Prices(31.6, 4.24, "placeholder (strategy.cost is not in the policy model yet)")


def default_prices() -> Prices:
    """The Cost strategy's default prices from the policy model, else the placeholder."""
    from gc_tuner.model.policy import StrategySpec

    field = StrategySpec.model_fields.get("cost")
    if field is None or field.default_factory is None:
        return PLACEHOLDER_PRICES
    doc = field.default_factory().model_dump(by_alias=True)  # type: ignore[call-arg]
    cpu, mem = doc.get("cpuPerCoreHourMilli"), doc.get("memoryPerGiBHourMilli")
    if not isinstance(cpu, int | float) or not isinstance(mem, int | float) or mem <= 0:
        return PLACEHOLDER_PRICES
    return Prices(cpu / 1000, mem / 1000, "strategy.cost defaults in the policy model")
