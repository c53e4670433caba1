"""What the guard did in a gc-tuner trial: every change it applied and every verdict, read from the
tuner's status (one JSON document per cycle, `status.history`).

A tuner's figures alone cannot tell a strategy that chose one GOGC from a strategy whose later
choices the guard held back; the trail can. The status keeps only the last entries of its history,
so the trail is the union over every document of the trial. Times are seconds from the workload's
start: each document carries the wall-clock time it was written, and the line's arrival on the
monotonic clock ties the two.

`python -m bench.quality.guard_trail DIR` prints the trails of a run's kept status logs
(DIR/<scenario>-<setting>-<repeat>.status.jsonl), for runs whose JSON predates the field.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["GuardEvent", "describe", "from_status_file", "from_status_lines", "summarize"]

# The verdicts that end a trial (the history's other entries, "Canary", start one).
ENDINGS = ("Promoted", "RolledBack", "Preempted", "NoVerdict")


@dataclass(frozen=True, slots=True)
class GuardEvent:
    t_s: float  # from the workload's start
    from_gogc: int | None
    to_gogc: int | None
    verdict: str  # "Canary" (a change applied) or how its trial ended
    reason: str


def _wall(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    hist = doc.get("status", {}).get("history")
    return [h for h in hist if isinstance(h, dict)] if isinstance(hist, list) else []


def from_status_lines(lines: Iterable[tuple[float, str]], t0: float) -> list[GuardEvent]:
    """The trail from (monotonic arrival, JSON line) pairs; `t0` is the workload's start on the same
    clock. Unreadable lines are skipped: the trail is evidence, never a reason to fail a trial."""
    seen: dict[tuple[str, str, Any], GuardEvent] = {}
    for arrived, line in lines:
        try:
            doc = json.loads(line)
            written = float(doc["time"])
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(doc, dict):
            continue
        for h in _entries(doc):
            wall = _wall(str(h.get("time", "")))
            key = (str(h.get("time")), str(h.get("verdict")), h.get("toGOGC"))
            if wall is None or key in seen:
                continue
            seen[key] = GuardEvent(
                round(wall - written + arrived - t0, 1),
                h.get("fromGOGC") if isinstance(h.get("fromGOGC"), int) else None,
                h.get("toGOGC") if isinstance(h.get("toGOGC"), int) else None,
                str(h.get("verdict", "")),
                str(h.get("reason", "")),
            )
    return sorted(seen.values(), key=lambda e: e.t_s)


def describe(trail: Sequence[GuardEvent]) -> str:
    """One trial's trail in a line: '18 s 100→200 Canary; 78 s Promoted; ...'."""
    if not trail:
        return "no change applied"
    parts = []
    for e in trail:
        if e.verdict == "Canary" and e.from_gogc == e.to_gogc:
            parts.append(f"{e.t_s:.0f} s GOMEMLIMIT only (GOGC {e.to_gogc})")  # history keeps only GOGC
        elif e.verdict == "Canary":
            parts.append(f"{e.t_s:.0f} s {e.from_gogc}→{e.to_gogc}")
        else:
            parts.append(f"{e.t_s:.0f} s {e.verdict} ({e.reason})")
    if trail[-1].verdict == "Canary":
        parts.append("open at the end")
    return "; ".join(parts)


def summarize(trails: Sequence[Sequence[GuardEvent]]) -> str:
    """A setting's trails in a line: changes per trial and how their trials ended."""
    if not trails:
        return "no trials"
    changes = [sum(e.verdict == "Canary" for e in t) for t in trails]
    ends = {v: sum(e.verdict == v for t in trails for e in t) for v in ENDINGS}
    other = sum(e.verdict not in (*ENDINGS, "Canary") for t in trails for e in t)
    open_ = sum(bool(t) and t[-1].verdict == "Canary" for t in trails)
    said = ", ".join(f"{v} {n}" for v, n in ends.items() if n)
    return (
        f"changes applied per trial {min(changes)}-{max(changes)} "
        f"(median {statistics.median(changes):g}); trials ended: {said or 'none'}"
        + (f", other {other}" if other else "")
        + f"; a change still on trial at the end in {open_} of {len(trails)}"
    )


def from_status_file(path: Path) -> list[GuardEvent] | None:
    """A kept status log alone: times from its first document (about the tuner's start); None when
    it holds no status (a setting without gc-tuner)."""
    lines = path.read_text(errors="replace").splitlines()
    first = None
    pairs = []
    for line in lines:
        try:
            written = float(json.loads(line)["time"])
        except (ValueError, KeyError, TypeError):
            continue
        first = written if first is None else first
        pairs.append((written, line))
    return None if first is None else from_status_lines(pairs, first)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m bench.quality.guard_trail DIR  (a run's log directory)", file=sys.stderr)
        return 2
    by_setting: dict[str, list[list[GuardEvent]]] = {}
    for path in sorted(Path(argv[0]).glob("*.status.jsonl")):
        tag = path.name.removesuffix(".status.jsonl")
        trail = from_status_file(path)
        if trail is None:
            continue
        setting = tag.rsplit("-", 1)[0]
        by_setting.setdefault(setting, []).append(trail)
        print(f"{tag}: {describe(trail)}")
    for setting, trails in by_setting.items():
        print(f"== {setting}: {summarize(trails)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
