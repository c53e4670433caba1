"""What Applied says while an EnvPatch canary Deployment runs (loop/cycle.py `_canary_verdict`): where
the candidate runs, and that it does not run yet while an older canary is being deleted."""

from __future__ import annotations

import pytest

from gc_tuner.loop.cycle import _canary_verdict
from gc_tuner.tuning.records import PodFailure, Verdict
from gc_tuner.tuning.rollout import ApplyResult
from tests.tuning.test_canary_deployment_trial import ENVPATCH, GOOD, step, targets
from tests.tuning.test_safety import T0, fresh, spec

HELD = ApplyResult(GOOD, None, GOOD, Verdict("True", "InSync"))


@pytest.mark.parametrize(
    ("done", "says", "never"),
    [
        ("created", "GOGC 90 on canary Deployment web-gctuner-canary (1 pod, created this cycle)", "waits"),
        ("running", "GOGC 90 on canary Deployment web-gctuner-canary (1 pod);", "created"),
        ("replaced", "GOGC 90 waits for canary Deployment web-gctuner-canary", " on canary"),
        ("waiting", "GOGC 90 waits for canary Deployment web-gctuner-canary", " on canary"),
    ],
)
def test_applied_says_whether_the_candidate_runs_yet(done: str, says: str, never: str) -> None:
    s = step(fresh(), targets(3), T0)
    got = _canary_verdict(spec(rollout=ENVPATCH), s, HELD, None, done)
    assert (got.verdict.status, got.verdict.reason) == ("True", "Canary")
    assert says in got.verdict.message and never not in got.verdict.message
    assert got.verdict.message.endswith("the target keeps GOGC 100")


def test_a_canary_that_could_not_be_made_is_a_false_applied_and_a_failure() -> None:
    s = step(fresh(), targets(3), T0)
    failure = PodFailure("web-gctuner-canary", "canary", "CanaryDeploymentFailed", "HTTP 403: Forbidden")
    got = _canary_verdict(spec(rollout=ENVPATCH), s, HELD, failure, None)
    assert (got.verdict.status, got.verdict.reason) == ("False", "CanaryDeploymentFailed")
    assert got.failures == (failure,)
