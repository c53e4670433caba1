"""`gc-tuner operator` refuses unusable invocations with exit code 2 and a message, before kopf starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gc_tuner.cli.main import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --namespace NS (repeatable) or --all-namespaces"),
        (["-n", "a", "--all-namespaces"], "not both"),
        (
            ["-n", "a", "--kubeconfig", "/nonexistent/kubeconfig"],
            "--kubeconfig /nonexistent/kubeconfig: no such file",
        ),
        (
            ["-n", "a", "--min-interval-seconds", "0"],
            "'--min-interval-seconds': 0 is not in the range 1<=x<=900",
        ),
        (["-n", "a", "--min-interval-seconds", "901"], "'--min-interval-seconds': 901 is not in the range"),
        (
            ["-n", "a", "--min-interval-seconds", "10s"],
            "'--min-interval-seconds': '10s' is not a valid integer",
        ),
    ],
)
def test_bad_invocations_exit_2(args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["operator", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_a_kubeconfig_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("this: is not a kubeconfig\n")
    res = CliRunner().invoke(main, ["operator", "-n", "a", "--kubeconfig", str(bad)])
    assert res.exit_code == 2 and "cannot load the Kubernetes configuration" in res.output


def test_help_explains_the_interval_floor_and_why_there_are_no_default_flags() -> None:
    res = CliRunner().invoke(main, ["operator", "--help"], terminal_width=200)
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "--min-interval-seconds N" in text and "[default: 1; 1<=x<=900]" in text
    assert "status.sampling" in text and "IntervalRaised" in text
    assert "CRD's schema defaults (15 s, 300 s)" in text
