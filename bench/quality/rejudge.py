"""Judge a finished run again from its raw readings, when the judge (figures, goals, report) changed
after the run: `python -m bench.quality --scenario NAME --rejudge`.

The readings are the run's own (`quality_<scenario>.json`, every trial's raw record); nothing is
measured again. The report keeps the run's header verbatim (its commit, machine, load and setup),
adds the notes the new judge makes that the header lacks, and says, under it, which code judged
it. The run's first report stays in the history of the commit that added it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench.quality.guard_trail import GuardEvent, from_status_file
from bench.quality.trial import Cycle, TrialRecord

__all__ = ["RejudgeError", "fill_guard_trails", "load_records", "run_header", "with_notes"]

_FIELDS = {f.name for f in dataclasses.fields(TrialRecord)}


class RejudgeError(Exception):
    """The readings or the report to judge again are missing or unreadable."""


def _record(d: Any, i: int) -> TrialRecord:
    if not isinstance(d, dict):
        raise RejudgeError(f"trial {i} is not an object")
    unknown = sorted(set(d) - _FIELDS)
    if unknown:
        raise RejudgeError(f"trial {i} has fields this code does not know: {', '.join(unknown)}")
    try:
        r = TrialRecord(**{k: v for k, v in d.items() if k not in ("cycles", "guard")})
        r.cycles = [Cycle(**c) for c in d.get("cycles", [])]
        trail = d.get("guard")  # runs before the trail was kept have none
        r.guard = None if trail is None else [GuardEvent(**g) for g in trail]
    except TypeError as e:
        raise RejudgeError(f"trial {i}: {e}") from None
    return r


def load_records(path: Path) -> list[TrialRecord]:
    """Every trial of a run, as the run recorded it."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RejudgeError(f"{path}: no such file (a full run writes it)") from None
    except ValueError as e:
        raise RejudgeError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, list) or not doc:
        raise RejudgeError(f"{path}: expected a list of trials")
    return [_record(d, i) for i, d in enumerate(doc)]


def run_header(report: Path, judged_by: str) -> list[str]:
    """The run's report up to its results, then the line naming what judged it now."""
    try:
        lines = report.read_text().splitlines()
    except FileNotFoundError:
        raise RejudgeError(f"{report}: no such file (the run's report names its commit)") from None
    if "## Results" not in "\n".join(lines):
        raise RejudgeError(f"{report}: not a bench.quality report (no '## Results')")
    head = lines[: next(i for i, line in enumerate(lines) if line.startswith("## Results"))]
    while head and not head[-1].strip():
        head.pop()
    return [*head, f"- judged again from the run's readings by {judged_by}", ""]


def with_notes(header: list[str], notes: list[str]) -> list[str]:
    """The header with the notes this judge made that the run's own report lacks (e.g. a setting
    the new front rule leaves off), placed with the run's notes, before the line naming the judge."""
    new = [f"- {n}" for n in notes if f"- {n}" not in header]
    at = next((i for i, line in enumerate(header) if line.startswith("- judged again")), len(header))
    return [*header[:at], *new, *header[at:]]


def fill_guard_trails(records: list[TrialRecord], logs: Path) -> int:
    """For a run made before the JSON kept the guard's trail: read each trial's from its kept status
    log (`<scenario>-<setting>-<repeat>.status.jsonl`). Returns how many trials got one."""
    if not logs.is_dir():
        raise RejudgeError(f"{logs}: not a directory (the run prints its log directory at the start)")
    n = 0
    for r in records:
        path = logs / f"{r.scenario}-{r.config}-{r.repeat}.status.jsonl"
        if r.guard is not None or not path.is_file():
            continue
        trail = from_status_file(path)
        if trail is not None:
            r.guard, n = trail, n + 1
    return n
