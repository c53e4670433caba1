"""`gc-tuner operator --priority`: kopf pauses every peer when two share the highest priority, so the
replicas of one Deployment need distinct ones; 'auto' derives a stable one from the pod name."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gc_tuner.cli.exits import CLIError
from gc_tuner.cli.main import main
from gc_tuner.cli.operator import peer_identity, peering_priority


def test_auto_is_stable_per_pod_and_differs_between_replicas() -> None:
    a = peering_priority("auto", "gc-tuner-7d64c4bc9c-gj896")
    b = peering_priority("auto", "gc-tuner-7d64c4bc9c-ljm28")
    assert a == peering_priority("auto", "gc-tuner-7d64c4bc9c-gj896")
    assert a != b and min(a, b) >= 1 and max(a, b) <= 2**31 - 1


def test_integers_pass_through_and_garbage_is_named() -> None:
    assert peering_priority("100", "x") == 100
    assert peering_priority("-5", "x") == -5
    with pytest.raises(CLIError, match="--priority 'high'"):
        peering_priority("high", "x")


def test_bad_priority_is_exit_2_without_traceback() -> None:
    res = CliRunner().invoke(main, ["operator", "-n", "shop", "--priority", "high"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "want an integer or 'auto'" in res.output


def test_a_pod_is_its_own_peer_name() -> None:
    # The peering object then shows which pod holds which priority (e2e/test_chart.py relies on it).
    assert peer_identity({"POD_NAME": "gc-tuner-7d64c4bc9c-gj896"}) == "gc-tuner-7d64c4bc9c-gj896"
    assert peer_identity({"POD_ID": "explicit", "POD_NAME": "gc-tuner-x"}) == "explicit"
    assert peer_identity({"POD_NAME": ""}) is None and peer_identity({}) is None
