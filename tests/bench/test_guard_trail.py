"""bench.quality.guard_trail on crafted status documents: the trail is the union of every document's
capped history, timed from the workload's start, and its summary counts what happened."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.quality.aggregate import ConfigResult, aggregate
from bench.quality.contenders import by_key
from bench.quality.guard_trail import GuardEvent, describe, from_status_lines, main, summarize
from bench.quality.trial import TrialRecord
from bench.quality.writeup import Meta, write_report

WALL0 = 1_800_000_000.0  # the wall clock when the workload started


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(WALL0 + t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(t: float, verdict: str, frm: int, to: int, reason: str = "Applied") -> dict[str, object]:
    return {"time": _stamp(t), "verdict": verdict, "fromGOGC": frm, "toGOGC": to, "reason": reason}


def _line(t: float, history: list[dict[str, object]]) -> str:
    return json.dumps({"time": WALL0 + t, "status": {"history": history}})


def test_union_of_capped_histories_timed_from_the_workload_start() -> None:
    first, promoted, second = (
        _entry(18, "Canary", 100, 200),
        _entry(78, "Promoted", 100, 200, "NoRegression"),
        _entry(105, "Canary", 200, 77),
    )
    # The monotonic clock reads 5000 at the workload's start; each line arrives 0.2 s after writing.
    t0 = 5000.0
    lines = [
        (t0 + 20.2, _line(20, [first])),
        (t0 + 80.2, _line(80, [first, promoted])),
        (t0 + 106.2, _line(106, [promoted, second])),  # the first entry fell off the capped history
        (t0 + 107.0, "not json"),
        (t0 + 108.0, json.dumps({"status": {}})),  # no time: skipped
    ]
    trail = from_status_lines(lines, t0)
    assert [(e.t_s, e.verdict, e.to_gogc) for e in trail] == [
        (18.2, "Canary", 200),
        (78.2, "Promoted", 200),
        (105.2, "Canary", 77),
    ]
    assert describe(trail) == "18 s 100→200; 78 s Promoted (NoRegression); 105 s 200→77; open at the end"


def test_summary_counts_changes_endings_and_open_trials() -> None:
    a = [GuardEvent(18, 100, 200, "Canary", "Applied"), GuardEvent(78, 100, 200, "Promoted", "NoRegression")]
    b = [
        GuardEvent(18, 100, 200, "Canary", "Applied"),
        GuardEvent(40, 100, 200, "RolledBack", "Regression"),
        GuardEvent(60, 100, 150, "Canary", "Applied"),
    ]
    assert summarize([a, b, []]) == (
        "changes applied per trial 0-2 (median 1); trials ended: Promoted 1, RolledBack 1; "
        "a change still on trial at the end in 1 of 3"
    )
    assert describe([]) == "no change applied"
    limit_only = [
        GuardEvent(18, 100, 100, "Canary", "Applied"),
        GuardEvent(27, 100, 100, "Preempted", "LeakHold"),
    ]
    assert describe(limit_only) == "18 s GOMEMLIMIT only (GOGC 100); 27 s Preempted (LeakHold)"
    assert summarize([]) == "no trials"


def test_cli_reads_a_run_directory_and_skips_settings_without_a_tuner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "diurnal-cost-0.status.jsonl").write_text(
        "\n".join([_line(0, []), _line(20, [_entry(18, "Canary", 100, 200)])]) + "\n"
    )
    (tmp_path / "diurnal-gogc100-0.status.jsonl").write_text("")
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "diurnal-cost-0: 18 s 100→200; open at the end" in out
    assert "== diurnal-cost: changes applied per trial 1-1" in out
    assert "gogc100" not in out
    assert main([str(tmp_path / "missing")]) == 2
    assert "usage" in capsys.readouterr().err


def test_the_report_says_what_the_guard_did_per_gc_tuner_setting(tmp_path: Path) -> None:
    def record(key: str, repeat: int, guard: list[GuardEvent]) -> TrialRecord:
        r = TrialRecord("diurnal", key, repeat, repeat, 110, 10, 1 << 30, "")
        r.guard = guard
        return r

    held = [
        GuardEvent(18, 100, 200, "Canary", "Applied"),
        GuardEvent(78, 100, 200, "Promoted", "NoRegression"),
    ]
    records = [record("cost", 0, held), record("cost", 1, held[:1]), record("gogc100", 0, [])]
    configs = {k: ConfigResult(by_key(k)) for k in ("cost", "gogc100")}
    sr = aggregate("diurnal", "crafted", 30, configs, 1 << 30)
    meta = Meta("cmd", 1, False, "commit abc, clean tree", True, {}, "", [], 1.0, 1.0)
    text = write_report(sr, [], [], records, meta, tmp_path, None).read_text()
    section = text.split("## What the guard did", 1)[1].split("\n## ", 1)[0]
    assert "**gc-tuner Cost**: changes applied per trial 1-1" in section
    assert "still on trial at the end in 1 of 2" in section
    assert "  - #0: 18 s 100→200; 78 s Promoted (NoRegression)" in section
    assert "  - #1: 18 s 100→200; open at the end" in section
    assert "GOGC=100" not in section
    loaded = json.loads((tmp_path / "quality_diurnal.json").read_text())
    assert loaded[0]["guard"][1] == {
        "t_s": 78,
        "from_gogc": 100,
        "to_gogc": 200,
        "verdict": "Promoted",
        "reason": "NoRegression",
    }
