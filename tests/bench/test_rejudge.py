"""`python -m bench.quality --rejudge`: a finished run judged again from its committed readings, with
its header kept and its JSON untouched; bad readings and bad use get a clear error and exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import bench.quality.__main__ as cli
from bench.common import RESULTS_DIR
from bench.quality.provenance import Provenance
from bench.quality.rejudge import RejudgeError, fill_guard_trails, load_records, run_header, with_notes

# A run from before the JSON kept the guard's trail, copied under the name the run wrote.
STEADY = RESULTS_DIR / "quality_steady_f38eed8"


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for ext in (".json", ".md"):
        shutil.copy(STEADY.with_suffix(ext), tmp_path / f"quality_steady{ext}")
    monkeypatch.setattr(cli, "provenance", lambda root: Provenance("abc123", ()))
    return tmp_path


def test_a_committed_run_judged_again_keeps_its_header_readings_and_figures(run_dir: Path) -> None:
    before = (run_dir / "quality_steady.md").read_text()
    readings = (run_dir / "quality_steady.json").read_bytes()
    assert cli.main(["--scenario", "steady", "--rejudge", "--out", str(run_dir)]) == 0
    after = (run_dir / "quality_steady.md").read_text()
    head = before.split("## Results", 1)[0].rstrip()
    assert after.startswith(head)
    assert "- judged again from the run's readings by commit abc123, clean tree" in after
    assert _section(after, "Results") == _section(before, "Results")
    assert (run_dir / "quality_steady.json").read_bytes() == readings
    assert (run_dir / "quality_steady.png").read_bytes()[:4] == b"\x89PNG"
    assert "**gc-tuner Cost**: not recorded (the run predates the trail" in after


def test_the_guard_trail_of_an_older_run_comes_from_its_status_logs(run_dir: Path) -> None:
    logs = run_dir / "logs"
    logs.mkdir()
    doc = {
        "time": 1_800_000_000.0,
        "status": {
            "history": [{"time": "2027-01-15T08:00:18Z", "verdict": "Canary", "fromGOGC": 100, "toGOGC": 150}]
        },
    }
    (logs / "steady-cost-0.status.jsonl").write_text(json.dumps(doc) + "\n")
    records = load_records(run_dir / "quality_steady.json")
    assert fill_guard_trails(records, logs) == 1
    (cost0,) = [r for r in records if r.config == "cost" and r.repeat == 0]
    assert cost0.guard is not None and [e.to_gogc for e in cost0.guard] == [150]
    argv = ["--scenario", "steady", "--rejudge", "--out", str(run_dir), "--logs", str(logs)]
    assert cli.main(argv) == 0
    text = (run_dir / "quality_steady.md").read_text()
    assert "the guard's trail of 1 trials read from the run's status logs" in text
    assert "  - #0: 18 s 100→150; open at the end" in _section(text, "What the guard did")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        ("{", "not JSON"),
        ("[]", "expected a list of trials"),
        ('[{"scenario": "steady", "surprise": 1}]', "fields this code does not know: surprise"),
        ('[{"scenario": "steady"}]', "trial 0:"),
    ],
)
def test_unreadable_readings_are_named(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "quality_steady.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RejudgeError, match=words):
        load_records(path)


def test_bad_use_exits_2_with_the_reason(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_dir / "quality_steady.md").write_text("# not a report\n")
    assert cli.main(["--scenario", "steady", "--rejudge", "--out", str(run_dir)]) == 2
    assert "not a bench.quality report" in capsys.readouterr().err
    with pytest.raises(RejudgeError, match="no such file"):
        run_header(run_dir / "missing.md", "x")
    assert cli.main(["--scenario", "steady,burst", "--rejudge"]) == 2
    assert "one --scenario" in capsys.readouterr().err
    assert cli.main(["--scenario", "steady", "--logs", str(run_dir)]) == 2
    assert "--logs goes with --rejudge" in capsys.readouterr().err
    monkeypatch.setattr(cli, "provenance", lambda root: Provenance("abc123", ("bench/x.py",)))
    assert cli.main(["--scenario", "steady", "--rejudge", "--out", str(run_dir)]) == 2
    assert "refusing to judge from a tree that differs" in capsys.readouterr().err


def test_notes_the_new_judge_makes_join_the_runs_own_once() -> None:
    header = ["# report", "", "- setup", "", "- GOGC=800 OOM-killed", "- judged again by x", ""]
    got = with_notes(header, ["GOGC=800 OOM-killed", "GOGC=400 left off the front"])
    assert got == [
        "# report",
        "",
        "- setup",
        "",
        "- GOGC=800 OOM-killed",
        "- GOGC=400 left off the front",
        "- judged again by x",
        "",
    ]
    assert with_notes(got, ["GOGC=400 left off the front"]) == got
