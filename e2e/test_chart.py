"""The Helm chart (charts/gc-tuner) with real helm on the real control plane.

1. `helm lint --strict` for every ci/*-values.yaml; the rendered manifests pass `kubectl apply
   --dry-run=server` (ServiceMonitor/PrometheusRule against the prometheus-operator's real CRDs); the
   alerts, evaluated by promtool, fire on the SLO breaches they name and stay quiet otherwise.
2. `helm install`: the operator pod runs through the test kubelet as the chart's ServiceAccount (a
   TokenRequest token, nothing else) and the operator's DryRun, Enforce/Endpoint and Enforce/EnvPatch
   scenarios pass with only the chart's RBAC. Where runc is available the pod runs the real image
   (built from the Dockerfile, e2e.image) under the chart's securityContext, and the token is the
   projected one at /var/run/secrets/kubernetes.io/serviceaccount; elsewhere the host's gc-tuner
   stands in. The session's first lines say which (`operator_runtime`).
3. `kubectl auth can-i --as=system:serviceaccount:...`: what the ServiceAccount may and may not do.
4. `helm upgrade` with changed values rolls the operator; `helm uninstall` leaves only the CRDs, and
   policies keep working after a reinstall.
"""

from __future__ import annotations

import inspect
import json
import os
import ssl
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.cluster.waits import pod_pids, wait_for
from e2e.helm import ensure_helm, ensure_monitoring_crds
from gc_tuner.cli.gobuild import repo_root

pytestmark = pytest.mark.e2e

CHART = repo_root() / "charts" / "gc-tuner"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "gc-tuner"
SA = "gc-tuner"  # the chart's ServiceAccount for release "gc-tuner" (fullname == release name)
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
# What an operator must never log when its RBAC is complete (kopf's and the kubernetes client's words).
FORBIDDEN_MARKS = ("Forbidden", "forbidden", "Not enough permissions", "HTTP 403", "(403)")

Helm = Callable[..., subprocess.CompletedProcess[str]]


# ---- helm -------------------------------------------------------------------------------------------
def _helm_env(home: Path, kubeconfig: Path | None) -> dict[str, str]:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def _runner(home: Path, kubeconfig: Path | None) -> Helm:
    exe = ensure_helm()

    def run(*args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(exe), *args],
            capture_output=True,
            text=True,
            env=_helm_env(home, kubeconfig),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def helm_offline(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm without a cluster (lint, template)."""
    return _runner(tmp_path_factory.mktemp("helm-home"), None)


@pytest.fixture(scope="session")
def helm(cluster: Any, operator_runtime: str) -> Helm:
    """helm talking to the test cluster as its admin (helm itself; the operator never gets these rights)."""
    return _runner(Path(cluster.dir) / "helm-home", Path(cluster.kubeconfig))


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


# ---- 1. lint, template, server-side dry run, alerts -------------------------------------------------
@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_helm_lint_strict_for_every_ci_values_file(helm_offline: Helm, values: Path) -> None:
    out = helm_offline("lint", "--strict", str(CHART), "-f", str(values)).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "bogus=1"), "additional properties 'bogus' not allowed"),
        (("--set", "operator.peering.bogus=1"), "additional properties 'bogus' not allowed"),
        (("--set", "operator.metricsPort=0"), "/operator/metricsPort"),
        (("--set", "operator.watchNamespaces[0]=Not_A_Namespace"), "/operator/watchNamespaces/0"),
        (("--set", "prometheusRule.gcCPU.threshold=2"), "/prometheusRule/gcCPU/threshold"),
        (("--set", "replicaCount=2"), "replicaCount > 1 needs operator.peering.enabled=true"),
        (("--set", "operator.livenessPort=9100"), "must differ"),
        (("--set", "operator.minIntervalSeconds=0"), "/operator/minIntervalSeconds"),
    ],
    ids=[
        "unknown-key",
        "unknown-nested-key",
        "port-0",
        "bad-namespace",
        "fraction-above-1",
        "ha-standalone",
        "same-ports",
        "interval-floor-0",
    ],
)
def test_bad_values_are_rejected_naming_the_value(
    helm_offline: Helm, args: tuple[str, ...], message: str
) -> None:
    proc = helm_offline("template", RELEASE, str(CHART), *args, check=False)
    assert proc.returncode != 0, f"helm accepted {args}"
    assert message in proc.stderr, proc.stderr


@pytest.fixture(scope="session")
def monitoring_crds(kubectl: Any) -> None:
    """prometheus-operator's ServiceMonitor and PrometheusRule CRDs (generated from its Go API types)."""
    for path in ensure_monitoring_crds().values():
        kubectl("apply", "--server-side", "-f", str(path))
    for kind in ("servicemonitors", "prometheusrules"):
        kubectl("wait", "--for=condition=Established", f"crd/{kind}.monitoring.coreos.com", "--timeout=60s")


@pytest.fixture(scope="session")
def chart_crds(kubectl: Any) -> None:
    """The chart's crds/ applied (what `helm install` does first), so its objects can be dry-run."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    for crd in ("gcpolicies.gctuner.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_rendered_chart_is_accepted_by_the_apiserver(
    helm: Helm, kubectl: Any, namespace: str, monitoring_crds: None, chart_crds: None, values: Path
) -> None:
    watched = yaml.safe_load(values.read_text()).get("operator", {}).get("watchNamespaces", [])
    for ns in watched:
        if kubectl("get", "namespace", ns, check=False).returncode != 0:
            kubectl("create", "namespace", ns)
    rendered = helm("template", RELEASE, str(CHART), "--namespace", namespace, "-f", str(values)).stdout
    docs = _docs(rendered)
    proc = kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
    assert proc.returncode == 0, proc.stderr
    applied = [line for line in proc.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(docs), proc.stdout

    kinds = [d["kind"] for d in docs]
    vals = yaml.safe_load(values.read_text())
    replicas = vals.get("replicaCount", 1)
    assert ("PodDisruptionBudget" in kinds) == (replicas > 1)
    assert ("ServiceMonitor" in kinds) == bool(vals.get("serviceMonitor", {}).get("enabled"))
    assert ("PrometheusRule" in kinds) == bool(vals.get("prometheusRule", {}).get("enabled"))
    assert ("ConfigMap" in kinds) == bool(vals.get("grafanaDashboard", {}).get("enabled"))
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(watched)
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["resources"]["requests"]
    args = c["args"]
    assert ("--all-namespaces" in args) == (not watched)
    assert [a for a in args if a.startswith("--namespace=")] == [f"--namespace={n}" for n in watched]
    peering = vals.get("operator", {}).get("peering", {})
    assert ("--standalone" in args) != bool(peering.get("enabled"))
    assert ("--dry-run" in args) == bool(vals.get("operator", {}).get("dryRun"))
    floor = vals.get("operator", {}).get("minIntervalSeconds", 1)
    assert [a for a in args if a.startswith("--min-interval-seconds")] == [f"--min-interval-seconds={floor}"]


def _rules_file(helm_offline: Helm, tmp_path: Path) -> Path:
    rendered = helm_offline(
        "template", RELEASE, str(CHART), "-f", str(CHART / "ci" / "monitoring-values.yaml")
    ).stdout
    (rule,) = [d for d in _docs(rendered) if d["kind"] == "PrometheusRule"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def _promtool() -> str:
    exe = "/usr/bin/promtool"
    assert Path(exe).exists(), "promtool missing: scripts/test.sh installs Debian's prometheus package"
    return exe


def test_alerts_fire_on_the_slo_breaches_they_name(helm_offline: Helm, tmp_path: Path) -> None:
    """promtool evaluates the chart's own rules (monitoring ci values: gcCPU threshold 0.2 for 10m) on
    synthetic series: each alert fires after its `for`, and a value under the threshold stays quiet."""
    rules = _rules_file(helm_offline, tmp_path)
    check = subprocess.run([_promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    web, batch = 'namespace="shop", policy="web"', 'namespace="shop", policy="batch"'
    op = 'namespace="gc-tuner", job="gc-tuner", source="agent"'

    def fired(name: str, at: str, labels: dict[str, str], description: str, summary: str) -> dict[str, Any]:
        exp = {"exp_labels": {**labels, "severity": "warning", "team": "platform"}}
        exp["exp_annotations"] = {"description": description, "summary": summary}
        return {"eval_time": at, "alertname": name, "exp_alerts": [exp]}

    shop_web = {"namespace": "shop", "policy": "web"}
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # 150 µs p99 for 20 minutes breaks the 100 µs SLO; 80 µs does not.
                    {"series": f"gctuner_policy_stw_pause_p99_seconds{{{web}}}", "values": "0.00015x20"},
                    {"series": f"gctuner_policy_stw_pause_p99_seconds{{{batch}}}", "values": "0.00008x20"},
                    {"series": f"gctuner_policy_gc_cpu_window_fraction{{{web}}}", "values": "0.35x20"},
                    {"series": f"gctuner_policy_gc_cpu_window_fraction{{{batch}}}", "values": "0.1x20"},
                    # The share since start stays low while the windowed one is high: the alert follows
                    # the window.
                    {"series": f"gctuner_policy_gc_cpu_fraction{{{web}}}", "values": "0.05x20"},
                    # 30 failed samples per minute next to 70 good ones: 30 % errors.
                    {
                        "series": f'gctuner_sample_errors_total{{{op}, reason="Unreachable"}}',
                        "values": "0+30x20",
                    },
                    {"series": f"gctuner_samples_total{{{op}}}", "values": "0+70x20"},
                ],
                "alert_rule_test": [
                    # Not before `for` has passed.
                    {"eval_time": "5m", "alertname": "GCTunerSTWPauseP99High", "exp_alerts": []},
                    fired(
                        "GCTunerSTWPauseP99High",
                        "15m",
                        shop_web,
                        "The pods of GCPolicy shop/web have had a stop-the-world GC pause p99 of 150us "
                        "for 10m, above the 0.0001 s SLO.",
                        "GC stop-the-world pause p99 above the SLO",
                    ),
                    fired(
                        "GCTunerGCCPUHigh",
                        "15m",
                        shop_web,
                        "The GC has used 35% of the CPU of GCPolicy shop/web's pods for 10m (threshold 0.2).",
                        "The garbage collector uses a large share of the CPU",
                    ),
                    fired(
                        "GCTunerSampleErrorsHigh",
                        "18m",
                        {"namespace": "gc-tuner", "job": "gc-tuner"},
                        "30% of gc-tuner's samples have failed for 10m (threshold 0.1). The failing pods and "
                        "reasons are in the GCPolicies' status.pods and their Degraded condition.",
                        "gc-tuner fails to sample many pods",
                    ),
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    # 5 % sample errors: under the 10 % threshold.
                    {"series": f'gctuner_sample_errors_total{{{op}, reason="Timeout"}}', "values": "0+5x30"},
                    {"series": f"gctuner_samples_total{{{op}}}", "values": "0+95x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "25m", "alertname": "GCTunerSampleErrorsHigh", "exp_alerts": []}
                ],
            },
        ],
    }
    spec = tmp_path / "rules_test.yaml"
    spec.write_text(yaml.safe_dump(tests))
    proc = subprocess.run([_promtool(), "test", "rules", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


# ---- an installed release ---------------------------------------------------------------------------
@dataclass
class ChartOperator:
    """The operator as the chart runs it: a pod of the release, a process on the test kubelet."""

    kube: Any
    kubectl: Any
    namespace: str

    def pod(self) -> Any:
        from kubernetes import client

        pods = client.CoreV1Api(self.kube).list_namespaced_pod(self.namespace, label_selector=SELECTOR).items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        assert len(live) == 1, [p.metadata.name for p in live]
        return live[0]

    def ip(self) -> str:
        return str(self.pod().status.pod_ip)

    def metrics(self) -> str:
        return httpx.get(f"http://{self.ip()}:9100/metrics", timeout=5).text

    def healthy(self) -> bool:
        return httpx.get(f"http://{self.ip()}:8081/healthz", timeout=5).status_code == 200

    def logs(self) -> str:
        return str(self.kubectl("logs", "-n", self.namespace, self.pod().metadata.name).stdout)

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.logs().splitlines()[-n:])


def _ready(op: ChartOperator) -> bool:
    pod = op.pod()
    return (
        pod.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        and op.healthy()
    )


@pytest.fixture(scope="session")
def operator_runtime(request: pytest.FixtureRequest) -> str:
    """How the test kubelet runs the chart's image, "runc" or "host" (the kubelet makes the same
    choice: e2e.kubelet.operator_image.runtime_choice). With runc the image is built (or found in the
    cache) now, before any helm --wait starts its clock, as a node would have pulled it."""
    from e2e.kubelet.operator_image import runtime_choice

    runtime, why = runtime_choice()
    line = f"[chart e2e] operator pods run on the host's gc-tuner, not the image: {why}"
    if runtime == "runc":
        from e2e.image.builder import ensure_image

        built = ensure_image()
        line = (
            f"[chart e2e] operator pods run the image {built.name} ({built.key}, "
            f"{built.info.layers_bytes / 1e6:.0f} MB compressed) through runc"
        )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
    return runtime


def install(helm: Helm, namespace: str, *args: str) -> str:
    return helm(
        "install", RELEASE, str(CHART), "--namespace", namespace, "--wait", "--timeout", "180s", *args
    ).stdout


def _delete_policies(kubectl: Any, namespace: str) -> None:
    # While the operator still runs, so its finalizer restores what the policies changed.
    kubectl("delete", "gcpolicies", "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False)


@pytest.fixture
def release(helm: Helm, kubectl: Any, namespace: str) -> Iterator[list[str]]:
    """Installs done by the test (helm install/upgrade via `install`) are uninstalled afterwards."""
    installed: list[str] = []
    try:
        yield installed
    finally:
        if installed:
            _delete_policies(kubectl, namespace)
            helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "120s", check=False)


@pytest.fixture
def chart_operator(helm: Helm, kube: Any, kubectl: Any, namespace: str, release: list[str]) -> ChartOperator:
    """The chart installed into the test's namespace, its operator watching that namespace only."""
    install(helm, namespace, "--set", f"operator.watchNamespaces={{{namespace}}}")
    release.append(namespace)
    op = ChartOperator(kube, kubectl, namespace)
    wait_for(lambda: _ready(op), 120, "the chart's operator pod Ready and /healthz answering")
    return op


def _no_rbac_errors(op: ChartOperator) -> None:
    bad = [line for line in op.logs().splitlines() if any(m in line for m in FORBIDDEN_MARKS)]
    assert not bad, "the operator hit RBAC denials:\n" + "\n".join(bad[:20])


# ---- 2. install: the pod, its identity, and the operator's scenarios under the chart's RBAC ----------
def test_install_runs_the_operator_as_the_charts_serviceaccount(
    chart_operator: ChartOperator, kubectl: Any, namespace: str, operator_runtime: str
) -> None:
    op = chart_operator
    pod = op.pod()
    assert pod.spec.service_account_name == SA
    (cs,) = pod.status.container_statuses
    assert cs.image.startswith("ghcr.io/gctuner/gc-tuner:") and cs.ready and cs.restart_count == 0
    # The real process: `gc-tuner operator` with the pod's args, bound to the pod IP.
    (pid,) = pod_pids(pod.metadata.name)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    # The console script runs under its interpreter (shebang): skip to the script itself.
    argv = argv[next(i for i, a in enumerate(argv) if Path(a).name == "gc-tuner") :]
    assert argv[1] == "operator", argv
    assert argv[2:] == [a.replace("0.0.0.0", pod.status.pod_ip) for a in pod.spec.containers[0].args]
    env = dict(
        kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in kv
    )
    assert env["POD_NAMESPACE"] == namespace and env["POD_NAME"] == pod.metadata.name
    if operator_runtime == "runc":
        _check_the_image_runs_as_the_chart_asks(pid, env)
        status = _whoami_in_cluster(pid, env)
    else:
        # Its only credential: a kubeconfig holding a TokenRequest token of the chart's ServiceAccount.
        kubeconfig = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
        (user,) = kubeconfig["users"]
        assert set(user["user"]) == {"tokenFile"}, user
        who = kubectl("auth", "whoami", "-o", "json", f"--kubeconfig={env['KUBECONFIG']}").stdout
        status = json.loads(who)["status"]["userInfo"]
    assert status["username"] == f"system:serviceaccount:{namespace}:{SA}"
    assert status["extra"]["authentication.kubernetes.io/pod-name"] == [pod.metadata.name]
    # Metrics and liveness at the pod IP, through the chart's container ports.
    text = op.metrics()
    assert "gctuner_samples_total" in text or "# TYPE gctuner_samples counter" in text

    # The Service selects exactly the operator pod, on its metrics port. (Its EndpointSlice stays empty
    # here: the API rejects loopback endpoint addresses, and pod IPs on this node are 127.0.B.N.)
    svc = json.loads(kubectl("get", "service", RELEASE, "-n", namespace, "-o", "json").stdout)["spec"]
    sel = ",".join(f"{k}={v}" for k, v in sorted(svc["selector"].items()))
    assert kubectl("get", "pods", "-n", namespace, "-l", sel, "-o", "name").stdout.split() == [
        f"pod/{pod.metadata.name}"
    ]
    (port,) = svc["ports"]
    assert port["targetPort"] in {p.name for p in pod.spec.containers[0].ports if p.container_port == 9100}
    time.sleep(3)  # a few seconds of kopf's watches and scans
    _no_rbac_errors(op)


SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _check_the_image_runs_as_the_chart_asks(pid: int, env: dict[str, str]) -> None:
    """Read back from the running process what the chart's securityContext asks of the runtime."""
    root = Path(f"/proc/{pid}/root")
    assert os.stat(root).st_ino != os.stat("/").st_ino, "the operator runs in the host's root filesystem"
    assert (root / "opt/gc-tuner/share/sbom/pip-inspect.json").is_file(), "not the image's filesystem"
    st = _proc_status(pid)
    assert st["Uid"].split() == ["65532"] * 4 and st["Gid"].split() == ["65532"] * 4, st
    assert "65532" in st["Groups"].split()  # fsGroup
    assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == "0000000000000000", st
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
    mounts = {
        fields[4]: fields[5].split(",")[0]
        for fields in (line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines())
    }
    # /var/run is a link to /run in the image: the token's mount point shows there.
    sa_mount = mounts.get(SA_DIR) or mounts.get(SA_DIR.removeprefix("/var"))
    assert mounts["/"] == "ro" and mounts["/tmp"] == "rw" and sa_mount == "ro", mounts
    writable = [m for m, mode in mounts.items() if mode == "rw" and not m.startswith(("/dev", "/proc"))]
    assert writable == ["/tmp"], f"writable besides the chart's emptyDir: {writable}"
    assert "KUBECONFIG" not in env, "the image must log in in-cluster, with the projected token"


def _container_path(pid: int, path: str) -> Path:
    """`path` as the container sees it, from the host: its symlinks (the image's /var/run -> /run)
    resolved inside the container's root, not the host's."""
    root, cur = Path(f"/proc/{pid}/root"), "/"
    for part in Path(path).parts[1:]:
        nxt = os.path.join(cur, part)
        if (root / nxt.lstrip("/")).is_symlink():
            link = os.readlink(root / nxt.lstrip("/"))
            nxt = link if link.startswith("/") else os.path.normpath(os.path.join(cur, link))
        cur = nxt
    return root / cur.lstrip("/")


def _whoami_in_cluster(pid: int, env: dict[str, str]) -> dict[str, Any]:
    """Who the projected token in the container is, asked of the apiserver the container's
    KUBERNETES_SERVICE_HOST/PORT name, verified with the container's ca.crt: in-cluster config."""
    sa = _container_path(pid, SA_DIR)
    server = f"https://{env['KUBERNETES_SERVICE_HOST']}:{env['KUBERNETES_SERVICE_PORT']}"
    resp = httpx.post(
        f"{server}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        headers={"Authorization": f"Bearer {(sa / 'token').read_text().strip()}"},
        verify=ssl.create_default_context(cafile=str(sa / "ca.crt")),
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json()["status"]["userInfo"])


def _run_scenario(module: str, name: str, **fixtures: Any) -> None:
    """Run one of the operator's e2e scenarios (e2e/test_operator_*.py) with the chart's operator in
    place of its own subprocess: the scenario's assertions are reused, not copied."""
    import importlib

    fn = getattr(importlib.import_module(module), name)
    params = inspect.signature(fn).parameters
    missing = [p for p in params if p not in fixtures]
    assert not missing, f"{module}.{name} needs fixtures this test does not provide: {missing}"
    fn(**{p: fixtures[p] for p in params})


SCENARIOS = [
    ("e2e.test_operator_dryrun", "test_dry_run_recommends_from_the_fit_and_touches_nothing"),
    ("e2e.test_operator_envpatch", "test_envpatch_rolls_out_holds_in_cooldown_and_restores_on_delete"),
    # Secrets get (the agent's token) and pods/log get (gctrace) under the chart's RBAC as well.
    ("e2e.test_operator_endpoint", "test_endpoint_sets_every_process_live_and_new_pods_on_first_sample"),
    ("e2e.test_operator_signals", "test_gctrace_from_pod_logs_fills_status"),
    # The guarded EnvPatch rollout creates and deletes its canary Deployment under the chart's RBAC.
    (
        "e2e.test_operator_canary_envpatch",
        "test_a_harmful_envpatch_change_runs_on_a_canary_deployment_and_is_rolled_back",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "name"), SCENARIOS, ids=["dryrun", "envpatch", "endpoint", "gctrace", "envpatch-canary"]
)
def test_operator_scenarios_pass_with_only_the_charts_rbac(
    chart_operator: ChartOperator, kube: Any, kubectl: Any, namespace: str, module: str, name: str
) -> None:
    _run_scenario(module, name, namespace=namespace, kube=kube, kubectl=kubectl, operator=chart_operator)
    _no_rbac_errors(chart_operator)


# ---- 3. kubectl auth can-i --------------------------------------------------------------------------
_SUBRESOURCES = {"log", "status", "proxy", "exec", "token", "scale"}


def _can(kubectl: Any, who: str, verb: str, resource: str, *scope: str) -> bool:
    """kubectl auth can-i; "pods/log" names a subresource, "secrets/x" a Secret named x."""
    kind, _, rest = resource.partition("/")
    what = [kind, f"--subresource={rest}"] if rest in _SUBRESOURCES else [resource]
    proc = kubectl("auth", "can-i", verb, *what, f"--as={who}", *scope, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {verb} {resource} {scope}: {proc.stdout}{proc.stderr}"
    return answer == "yes"


PATCH_DENIED = (
    "pods",
    "pods/status",
    "services",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "namespaces",
    "nodes",
    "events",
    "replicasets.apps",
    "daemonsets.apps",
    "deployments.apps/scale",
    "gcpolicies.gctuner.io/scale",
    "jobs.batch",
    "roles.rbac.authorization.k8s.io",
    "clusterroles.rbac.authorization.k8s.io",
    "customresourcedefinitions.apiextensions.k8s.io",
    "leases.coordination.k8s.io",
)
NODE_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@pytest.mark.parametrize("scope", ["cluster-wide", "namespaced"])
def test_the_serviceaccount_can_do_what_the_operator_needs_and_nothing_it_must_not(
    helm: Helm, kubectl: Any, namespace: str, release: list[str], scope: str
) -> None:
    args = ["--set", f"operator.watchNamespaces={{{namespace}}}"] if scope == "namespaced" else []
    helm("install", RELEASE, str(CHART), "--namespace", namespace, *args)
    release.append(namespace)
    who = f"system:serviceaccount:{namespace}:{SA}"
    ns = ("-n", namespace)
    everywhere = ("--all-namespaces",)
    # What the operator does (it is exactly these calls; the scenarios above prove them sufficient).
    for verb, resource in (
        ("list", "gcpolicies.gctuner.io"),
        ("watch", "gcpolicies.gctuner.io"),
        ("patch", "gcpolicies.gctuner.io"),
        ("patch", "gcpolicies.gctuner.io/status"),
        ("list", "pods"),
        ("watch", "pods"),
        ("get", "pods/log"),
        ("get", "deployments.apps"),
        ("list", "deployments.apps"),
        ("watch", "deployments.apps"),
        ("patch", "deployments.apps"),
        ("patch", "statefulsets.apps"),  # EnvPatch of a StatefulSet target
        # the guarded EnvPatch rollout's canary Deployment (rbac.canaryDeployments, on by default)
        ("create", "deployments.apps"),
        ("delete", "deployments.apps"),
        # the other target kinds and the owner chain pod -> ReplicaSet -> Deployment: read only
        *(
            (v, r)
            for v in ("list", "watch")
            for r in ("statefulsets.apps", "daemonsets.apps", "replicasets.apps")
        ),
        ("get", "secrets/gctuner-token"),  # the default rbac.secrets.resourceNames: the docs' token name
        ("create", "events"),
    ):
        assert _can(kubectl, who, verb, resource, *ns), f"must be able to {verb} {resource}"
    assert not _can(kubectl, who, "get", "secrets/another-secret", *ns)
    assert _can(kubectl, who, "list", "customresourcedefinitions.apiextensions.k8s.io")
    # Never: list or watch Secrets (in its namespace or anywhere), update Deployments, patch anything
    # but Deployments, StatefulSets and GCPolicies, anything with Nodes, and no escalation.
    for verb in ("list", "watch"):
        assert not _can(kubectl, who, verb, "secrets", *everywhere)
        assert not _can(kubectl, who, verb, "secrets", *ns)
    for scope_args in (ns, everywhere):
        assert not _can(kubectl, who, "deletecollection", "deployments.apps", *scope_args)
        assert not _can(kubectl, who, "update", "deployments.apps", *scope_args)
        assert not _can(kubectl, who, "delete", "gcpolicies.gctuner.io", *scope_args)
    for resource in PATCH_DENIED:
        assert not _can(kubectl, who, "patch", resource, *ns), f"must not patch {resource}"
        assert not _can(kubectl, who, "patch", resource, *everywhere), f"must not patch {resource} anywhere"
    for verb in NODE_VERBS:
        for resource in ("nodes", "nodes/status", "nodes/proxy"):
            assert not _can(kubectl, who, verb, resource), f"must not {verb} {resource}"
    for verb, resource in (
        ("create", "pods/exec"),
        ("create", "serviceaccounts/token"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "users"),
        ("*", "*"),
    ):
        assert not _can(kubectl, who, verb, resource, *everywhere), f"must not {verb} {resource}"
    if scope == "namespaced":
        # A Role per watched namespace: nothing namespaced elsewhere.
        for verb, resource in (("list", "pods"), ("get", "secrets"), ("patch", "deployments.apps")):
            assert not _can(kubectl, who, verb, resource, "-n", "kube-system")
            assert not _can(kubectl, who, verb, resource, *everywhere)


def test_secret_access_can_be_limited_to_the_token_secrets(
    helm: Helm, kubectl: Any, namespace: str, release: list[str]
) -> None:
    helm(
        "install", RELEASE, str(CHART), "--namespace", namespace,
        "--set", f"operator.watchNamespaces={{{namespace}}}",
        "--set", "rbac.secrets.resourceNames={gctuner-token}",
    )  # fmt: skip
    release.append(namespace)
    who = f"system:serviceaccount:{namespace}:{SA}"
    assert _can(kubectl, who, "get", "secrets/gctuner-token", "-n", namespace)
    assert not _can(kubectl, who, "get", "secrets/other", "-n", namespace)
    assert not _can(kubectl, who, "get", "secrets", "-n", namespace)


def test_creating_and_deleting_deployments_can_be_withheld(
    helm: Helm, kubectl: Any, namespace: str, release: list[str]
) -> None:
    helm(
        "install", RELEASE, str(CHART), "--namespace", namespace,
        "--set", f"operator.watchNamespaces={{{namespace}}}",
        "--set", "rbac.canaryDeployments=false",
    )  # fmt: skip
    release.append(namespace)
    who = f"system:serviceaccount:{namespace}:{SA}"
    assert _can(kubectl, who, "patch", "deployments.apps", "-n", namespace)
    for verb in ("create", "delete"):
        assert not _can(kubectl, who, verb, "deployments.apps", "-n", namespace), verb


# ---- 4. upgrade, uninstall, reinstall ---------------------------------------------------------------
def test_upgrade_with_changed_values_rolls_out_the_operator(
    helm: Helm, chart_operator: ChartOperator, namespace: str
) -> None:
    op = chart_operator
    old = op.pod()
    old_pids = pod_pids(old.metadata.name)
    assert old_pids and "--dry-run" not in old.spec.containers[0].args
    helm(
        "upgrade", RELEASE, str(CHART), "--namespace", namespace, "--reuse-values",
        "--set", "operator.dryRun=true", "--set", "operator.verbose=true", "--wait", "--timeout", "180s",
    )  # fmt: skip
    new = wait_for(
        lambda: (p := op.pod()).metadata.uid != old.metadata.uid and p, 120, "the upgraded operator pod"
    )
    wait_for(lambda: _ready(op), 120, "the upgraded operator Ready")
    args = new.spec.containers[0].args
    assert "--dry-run" in args and "--verbose" in args
    assert not any(Path(f"/proc/{p}").exists() for p in old_pids), "the old operator process is still alive"
    (pid,) = pod_pids(new.metadata.name)
    assert "--dry-run" in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    wait_for(lambda: "every GCPolicy only recommends" in op.logs(), 30, "the --dry-run warning in the log")
    history = json.loads(helm("history", RELEASE, "--namespace", namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"


def _left_behind(kubectl: Any, namespace: str) -> list[str]:
    kinds = (
        "deployments,replicasets,pods,services,serviceaccounts,configmaps,roles,rolebindings,"
        "poddisruptionbudgets"
    )
    names = kubectl("get", kinds, "-n", namespace, "-l", SELECTOR, "-o", "name").stdout.split()
    names += kubectl("get", "clusterroles,clusterrolebindings", "-l", SELECTOR, "-o", "name").stdout.split()
    return names


@pytest.mark.slow
def test_uninstall_leaves_only_the_crds_and_policies_keep_working_after_a_reinstall(
    helm: Helm, kube: Any, kubectl: Any, namespace: str, chart_operator: ChartOperator, release: list[str]
) -> None:
    from kubernetes import client

    from e2e.cluster.manifests import workload_deployment
    from e2e.operator_support import create_policy, get_policy, ready_pods

    client.AppsV1Api(kube).create_namespaced_deployment(namespace, workload_deployment("web", replicas=1))
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 1, 90, "the workload pod")
    spec = {
        "targetRef": {"name": "web"},
        "mode": "DryRun",
        "sampling": {"intervalSeconds": 2, "windowSeconds": 30, "sources": {"prometheus": {"port": 8080}}},
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
    }
    create_policy(kube, namespace, "web", spec)
    wait_for(
        lambda: get_policy(kube, namespace, "web").get("status", {}).get("recommendation"),
        60,
        "a recommendation",
    )
    # The per-policy series the chart's dashboard and alerts read, served by the chart's operator.
    series = f'{{namespace="{namespace}",policy="web"}}'
    wanted = ("gctuner_recommended_gogc", "gctuner_policy_qps", "gctuner_policy_heap_slope_mb_per_second")
    wait_for(lambda: all(m + series in chart_operator.metrics() for m in wanted), 30, f"{wanted} in /metrics")
    old_pod = chart_operator.pod()
    old_pids = pod_pids(old_pod.metadata.name)

    helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "120s")
    release.clear()
    wait_for(lambda: not _left_behind(kubectl, namespace), 60, "every object of the release gone")
    assert not any(Path(f"/proc/{p}").exists() for p in old_pids), "the operator process outlived uninstall"
    for crd in ("gcpolicies.gctuner.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        assert kubectl("get", "crd", crd, check=False).returncode == 0, f"{crd} must survive uninstall"
    kept = get_policy(kube, namespace, "web")  # the users' policies survive with their CRD
    stale = kept["status"]["recommendation"]["time"]

    t_reinstall = time.time()
    install(helm, namespace, "--set", f"operator.watchNamespaces={{{namespace}}}")
    release.append(namespace)
    wait_for(lambda: _ready(chart_operator), 120, "the reinstalled operator Ready")

    def fresh() -> dict[str, Any] | None:
        st = get_policy(kube, namespace, "web").get("status", {})
        rec = st.get("recommendation") or {}
        ok = rec.get("time") and rec["time"] != stale and _ts(rec["time"]) >= int(t_reinstall)
        return st if ok else None

    st = wait_for(fresh, 60, "a new recommendation from the reinstalled operator")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", st["conditions"]
    _no_rbac_errors(chart_operator)


def _ts(rfc3339: str) -> int:
    from gc_tuner.tuning.records import parse_rfc3339

    t = parse_rfc3339(rfc3339)
    assert t is not None, rfc3339
    return int(t)


# ---- 5. the README's install section and the chart's NOTES -----------------------------------------
def _readme_section() -> str:
    text = (repo_root() / "README.md").read_text()
    start = text.index("## Install with Helm")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_readme_install_section_examples_are_real(
    helm: Helm, kubectl: Any, namespace: str, chart_crds: None
) -> None:
    import re

    section = _readme_section()
    assert "helm install gc-tuner charts/gc-tuner" in section
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    policies = [d for b in blocks for d in _docs(b) if d.get("kind") == "GCPolicy"]
    assert policies, "the section needs a GCPolicy example"
    # The NOTES helm prints after an install carry one more (indented by five spaces there).
    rendered_notes = helm("install", RELEASE, str(CHART), "--dry-run=client", "-n", namespace).stdout
    start = rendered_notes.rindex("\n", 0, rendered_notes.index("apiVersion: gctuner.io")) + 1
    example = rendered_notes[start : rendered_notes.index("YAML\n\n3.")]
    policies.append(yaml.safe_load(textwrap.dedent(example)))
    for pol in policies:
        pol["metadata"]["namespace"] = namespace
        proc = kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pol), check=False)
        assert proc.returncode == 0, f"{pol['metadata']['name']}: {proc.stderr}"
    # The `kubectl get gcpol` output shown has the CRD's printer columns.
    crd = yaml.safe_load((CHART / "crds" / "gcpolicies.gctuner.io.yaml").read_text())
    columns = [c["name"].upper() for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    header = next(line for line in section.splitlines() if line.startswith("NAMESPACE   NAME"))
    assert header.split() == ["NAMESPACE", "NAME", *columns]


# ---- replicas > 1: peering with per-pod priorities, and the PodDisruptionBudget ---------------------
@pytest.mark.slow
def test_two_replicas_one_active_one_standby_under_a_pdb(
    helm: Helm, kube: Any, kubectl: Any, namespace: str, release: list[str]
) -> None:
    from kubernetes import client

    from e2e.cluster.manifests import workload_deployment
    from e2e.operator_support import create_policy, get_policy, ready_pods

    install(
        helm, namespace, "-f", str(CHART / "ci" / "peering-ha-values.yaml"),
        "--set", f"operator.watchNamespaces={{{namespace}}}",
    )  # fmt: skip
    release.append(namespace)
    core = client.CoreV1Api(kube)

    def operator_pods() -> list[Any]:
        pods = core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
        running = [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
        return running if len(running) == 2 else []

    pods = wait_for(operator_pods, 120, "two operator pods running")
    assert all("--priority=auto" in p.spec.containers[0].args for p in pods)
    # The disruption controller counts both and allows one voluntary eviction at a time.
    pdb = wait_for(
        lambda: (
            (
                b := client.PolicyV1Api(kube).read_namespaced_pod_disruption_budget(RELEASE, namespace)
            ).status.expected_pods
            == 2
            and b
        ),
        60,
        "the PodDisruptionBudget's status",
    )
    assert pdb.spec.min_available == 1 and pdb.status.disruptions_allowed == 1

    client.AppsV1Api(kube).create_namespaced_deployment(namespace, workload_deployment("web", replicas=1))
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 1, 90, "the workload pod")
    interval = 2
    spec = {
        "targetRef": {"name": "web"},
        "sampling": {
            "intervalSeconds": interval,
            "windowSeconds": 30,
            "sources": {"prometheus": {"port": 8080}},
        },
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
    }
    create_policy(kube, namespace, "web", spec)
    wait_for(
        lambda: get_policy(kube, namespace, "web").get("status", {}).get("recommendation"),
        60,
        "a recommendation",
    )

    # kopf logs "Pausing operations in favour of ..." only when a working operator becomes a standby.
    # With mandatory peering a replica starts paused, so one whose first look at the peering object
    # already shows a higher priority stays paused without a word: whether any replica logs that line
    # depends on their start order. What counts is the state: both replicas are live peers, named by
    # their pods, with distinct priorities; the higher one works and the lower one does nothing.
    names = {p.metadata.name for p in pods}
    priorities = wait_for(
        lambda: _peering_priorities(kubectl, namespace, "gc-tuner-ci", names), PEER_WAIT_S, "both peers"
    )
    assert len(set(priorities.values())) == 2, priorities
    active, standby = sorted(pods, key=lambda p: priorities[p.metadata.name], reverse=True)

    def standby_idle_while_active_works() -> bool:
        before = (_samples_taken(active), _samples_taken(standby))
        time.sleep(3 * interval)
        return _samples_taken(active) > before[0] and _samples_taken(standby) == before[1]

    wait_for(standby_idle_while_active_works, 60, "the active replica sampling and the standby idle")
    # Distinct priorities: nobody pauses "all operators" (what kopf does on a tie for the highest).
    for p in pods:
        assert "Pausing all operators" not in kubectl("logs", "-n", namespace, p.metadata.name).stdout


def _peer_wait_s() -> float:
    import kopf

    # A replica enters the peering object at its first keep-alive, right after it starts; if that one
    # is lost the next comes within one lifetime (kopf renews every lifetime - 5..10 s). Plus a minute
    # for a replica whose pod is Running but whose Python is still importing on a loaded 2-core machine.
    return float(kopf.OperatorSettings().peering.lifetime) + 60


PEER_WAIT_S = _peer_wait_s()


def _peering_priorities(kubectl: Any, namespace: str, name: str, pods: set[str]) -> dict[str, int] | None:
    """The priority of each of `pods` in the KopfPeering's status (the operator names a peer by its
    pod), once all of them are there."""
    doc = json.loads(kubectl("get", "kopfpeering", name, "-n", namespace, "-o", "json").stdout)
    status = doc.get("status") or {}
    found = {pod: int(status[pod]["priority"]) for pod in pods if pod in status}
    return found if len(found) == len(pods) else None


def _samples_taken(pod: Any) -> float:
    """Successful reads of pod sources the operator in `pod` has made, from its own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://{pod.status.pod_ip}:9100/metrics", timeout=5).text
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "gctuner_samples_total"
    )
