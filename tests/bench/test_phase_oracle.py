"""The hindsight per-phase oracle on crafted trials: it picks each phase's cheapest static setting,
its bound is exact on crafted numbers, and it says nothing when the figures are missing."""

from __future__ import annotations

import pytest

from bench.quality.phase_oracle import cuts_for, phase_oracle, report_lines
from bench.quality.prices import Prices
from bench.quality.trial import Cycle, TrialRecord
from bench.quality.windows import lived_through

MiB = 1 << 20
PRICES = Prices(40.0, 4.0, "test")  # per core-hour, per GiB-hour
CUTS = [10.0, 35.0, 60.0, 85.0, 110.0]  # diurnal: warm-up end, three phase changes, end


def _record(key: str, per_phase: list[tuple[float, float]], *, died: float | None = None) -> TrialRecord:
    """GC CPU (cores) and memory (MiB) held through each phase: one cycle per second, memory at 10 Hz."""
    r = TrialRecord("diurnal", key, 0, 0, 110, 10, 1 << 30, "cgroup", duration_s=110)
    r.died_at_s = died

    def at(t: float) -> tuple[float, float]:
        i = max(0, min(len(per_phase) - 1, next((j for j, c in enumerate(CUTS[1:]) if t <= c), 3)))
        return per_phase[i]

    r.cycles = [Cycle(float(t), at(t - 0.5)[0], 0.0, 0, 0) for t in range(1, 111)]
    r.memory = [(t / 10, int(at(t / 10)[1] * MiB)) for t in range(0, 1101)]
    return r


def _cost(cores: float, mib: float) -> float:
    return 40 * cores + 4 * mib / 1024


# A is cheap while QPS is high (phases 1 and 3 here), B while the heap is big (2 and 4).
A = [(0.01, 200), (0.10, 600), (0.01, 200), (0.10, 600)]
B = [(0.05, 300), (0.02, 300), (0.05, 300), (0.02, 300)]


def test_the_oracle_switches_to_each_phases_cheapest_setting_and_bounds_the_saving() -> None:
    o = phase_oracle({"a": [_record("a", A)], "b": [_record("b", B)]}, CUTS, PRICES)
    assert o is not None
    assert [p.key for p in o.phases] == ["a", "b", "a", "b"]
    cheap = (_cost(*A[0]) + _cost(*B[1])) / 2
    whole_a = sum(_cost(*x) for x in A) / 4
    whole_b = sum(_cost(*x) for x in B) / 4
    assert o.rate == pytest.approx(cheap, rel=0.02)
    assert o.static_key == ("a" if whole_a < whole_b else "b")
    assert o.saving == pytest.approx(1 - cheap / min(whole_a, whole_b), abs=0.02)
    assert o.saving > 0.10


def test_when_one_setting_is_cheapest_in_every_phase_switching_earns_nothing() -> None:
    cheap = [(0.01, 100)] * 4
    o = phase_oracle({"a": [_record("a", A)], "c": [_record("c", cheap)]}, CUTS, PRICES)
    assert o is not None and [p.key for p in o.phases] == ["c"] * 4
    assert o.saving == pytest.approx(0.0, abs=1e-9)


def test_report_lines_and_missing_figures() -> None:
    statics = {"a": [_record("a", A)], "b": [_record("b", B)]}
    text = "\n".join(report_lines(statics, {"a": "A", "b": "B"}, CUTS, PRICES, (1.0, 3.0)))
    assert "| 10-35 s | A " in text and "bound on the saving" in text
    assert "CPU:memory 10.00:1" in text and "CPU:memory 30.00:1" in text
    assert report_lines(statics, {}, [10.0], PRICES, (1.0,))[0].startswith("- not judged")
    assert phase_oracle({}, CUTS, PRICES) is None
    assert cuts_for([10, 35, 60, 85], 10, 110) == CUTS
    assert cuts_for([10, 35, 60, 85, 120], 10, 110) == CUTS
    assert cuts_for([10], 10, 5) == []


def test_a_setting_competes_only_in_the_phases_it_lived_through() -> None:
    # D is the cheapest of all while it lives, and is killed at 50 s: it may win the first phase
    # only, and cannot be the best single setting.
    d = _record("d", [(0.001, 50)] * 4, died=50.0)
    o = phase_oracle({"a": [_record("a", A)], "b": [_record("b", B)], "d": [d]}, CUTS, PRICES)
    assert o is not None
    assert [p.key for p in o.phases] == ["d", "b", "a", "b"]
    assert o.static_key in ("a", "b")
    # Two trials, one killed: the setting sits out the phases after the kill.
    live = _record("d", [(0.001, 50)] * 4)
    o = phase_oracle({"a": [_record("a", A)], "b": [_record("b", B)], "d": [live, d]}, CUTS, PRICES)
    assert o is not None and [p.key for p in o.phases] == ["d", "b", "a", "b"]


@pytest.mark.parametrize(
    ("died", "oom", "at", "lived"),
    [
        (None, 0, None, True),  # ran to the end
        (None, 0, 60.0, True),
        (50.0, 1, None, False),  # killed: never lived the whole run
        (50.0, 1, 35.0, True),  # ...but lived through a phase that ended before the kill
        (50.0, 1, 60.0, False),
        (59.7, 1, 60.0, True),  # the death seen at the sampler's next tick
        (None, 1, 35.0, False),  # an OOM kill whose time was not seen: credited with nothing
        (None, 1, None, False),
    ],
)
def test_one_rule_says_what_a_trial_lived_through(
    died: float | None, oom: int, at: float | None, lived: bool
) -> None:
    assert lived_through(died, oom, at) is lived


def test_an_oom_kill_without_a_time_keeps_the_setting_out_of_every_phase() -> None:
    d = _record("d", [(0.001, 50)] * 4)
    d.oom_kills = 1
    o = phase_oracle({"a": [_record("a", A)], "b": [_record("b", B)], "d": [d]}, CUTS, PRICES)
    assert o is not None and "d" not in [p.key for p in o.phases]
