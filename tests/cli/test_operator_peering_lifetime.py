"""`gc-tuner operator --peering-lifetime`: how long a replica's keep-alive counts, i.e. how soon a standby
takes over from a replica that died without a goodbye (e2e/test_operator_failover.py measures it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from gc_tuner.cli import operator as operator_cli
from gc_tuner.cli.main import main
from gc_tuner.cli.operator import DEFAULT_PEERING_LIFETIME_S, KOPF_PEERING_LIFETIME_S, MIN_PEERING_LIFETIME_S
from gc_tuner.controller import metrics
from gc_tuner.controller.metrics import OperatorMetrics

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_kopfs_own_default_is_the_one_named() -> None:
    assert kopf.OperatorSettings().peering.lifetime == KOPF_PEERING_LIFETIME_S


def test_the_default_takeover_fits_in_the_least_lease_left_with_the_crds_defaults() -> None:
    """A standby must write before a healthy pod's lease runs out: with the CRD's defaults a pod has
    at least min(lease, 2 × (interval + timeout)) − interval of lease left when the active dies."""
    from gc_tuner.model.policy import RolloutSpec, SamplingSpec

    lease = RolloutSpec().lease_seconds
    s = SamplingSpec.model_validate({"sources": {"agent": {"port": 1}}})
    least = min(lease, 2 * (s.interval_seconds + s.timeout_seconds)) - s.interval_seconds
    assert least > DEFAULT_PEERING_LIFETIME_S + 2, (DEFAULT_PEERING_LIFETIME_S, least)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (str(MIN_PEERING_LIFETIME_S - 1), "'--peering-lifetime': 9 is not in the range 10<=x<=3600"),
        ("3601", "'--peering-lifetime': 3601 is not in the range 10<=x<=3600"),
        ("15s", "'--peering-lifetime': '15s' is not a valid integer"),
    ],
)
def test_out_of_range_or_not_a_number_is_exit_2(value: str, message: str) -> None:
    res = CliRunner().invoke(main, ["operator", "-n", "a", "--peering-lifetime", value])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_help_names_the_takeover_and_the_lease_it_must_stay_under() -> None:
    res = CliRunner().invoke(main, ["operator", "--help"], terminal_width=200)
    text = " ".join(res.output.split())
    assert "--peering-lifetime SECONDS" in text and "[default: 20; 10<=x<=3600]" in text
    assert "SIGKILL" in text and "standby" in text
    assert "min(leaseSeconds, 2*(intervalSeconds + timeoutSeconds)) - intervalSeconds" in text


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    """Invoke `gc-tuner operator` with kopf.run replaced; the keyword arguments it got."""
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kw: seen.update(kw))
    # The kubernetes client fixes its default kubeconfig path when first imported (earlier, in this
    # process): loading it is not what is tested here.
    monkeypatch.setattr(operator_cli, "_configure_client", lambda: None)
    # Nor the metrics, which would go into the process-wide registry (once only).
    monkeypatch.setattr(metrics, "OperatorMetrics", lambda: OperatorMetrics(CollectorRegistry()))
    # The CLI sets both for kopf and its client; monkeypatch puts them back afterwards.
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("POD_ID", raising=False)
    base = ["operator", "-n", "a", "--kubeconfig", str(config), "--metrics-port", "0", "--liveness-port", "0"]
    res = CliRunner().invoke(main, [*base, *args])
    assert res.exit_code == 0, res.output
    return seen


def test_the_value_reaches_kopfs_peering_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _run(tmp_path, monkeypatch, "--peering", "p", "--priority", "7", "--peering-lifetime", "15")
    assert seen["settings"].peering.lifetime == 15
    assert (seen["peering_name"], seen["priority"], seen["standalone"]) == ("p", 7, False)
    assert _run(tmp_path, monkeypatch)["settings"].peering.lifetime == DEFAULT_PEERING_LIFETIME_S
