"""`gc-tuner operator`: run the Kubernetes operator (kopf) that reconciles GCPolicies."""

from __future__ import annotations

import logging
import os
import socket
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import click
from click.decorators import FC

from gc_tuner.cli.exits import CLIError
from gc_tuner.tuning.floor import MAX_MIN_INTERVAL_SECONDS

__all__ = [
    "DEFAULT_PEERING_LIFETIME_S",
    "KOPF_PEERING_LIFETIME_S",
    "MAX_PEERING_LIFETIME_S",
    "MIN_PEERING_LIFETIME_S",
    "operator",
    "peer_identity",
    "peering_priority",
]

# kopf's own default (kopf.OperatorSettings().peering.lifetime); a unit test keeps the two equal.
KOPF_PEERING_LIFETIME_S = 60
# gc-tuner's default is shorter: with the CRD's defaults (lease 60 s, interval 15 s, timeout 5 s) a pod
# has at least min(60, 2 × (15 + 5)) − 15 = 25 s of lease left when the working replica dies, so a
# takeover within kopf's 60 s would let healthy pods fall back to their startup values; within 20 s
# (plus about a second to the first write) it does not. Each replica then renews its entry every
# 10-15 s: one small patch of the peering object.
DEFAULT_PEERING_LIFETIME_S = 20
# kopf renews a peer's entry 5-10 s before it expires, but never more often than every second, so below
# 6 s less than 5 s is left to spare and a keep-alive delayed by a busy apiserver makes a live replica
# look dead (two replicas then work at once). 10 keeps a round margin above that.
MIN_PEERING_LIFETIME_S = 10
MAX_PEERING_LIFETIME_S = 3600


def _port_option(flag: str, default: int, help_text: str) -> Callable[[FC], FC]:
    """A TCP port option where 0 turns the server off."""
    return click.option(
        flag, type=click.IntRange(0, 65535), default=default, show_default=True, help=help_text
    )


@click.command("operator")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Watch this namespace (repeatable; kopf globs like 'team-*' work).",
)
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace (cluster-wide).")
@click.option(
    "--standalone",
    is_flag=True,
    help="Run alone: no peering with other gc-tuner replicas (otherwise they elect one active).",
)
@click.option(
    "--peering",
    "peering_name",
    default="gc-tuner",
    show_default=True,
    help="Peering object name used to coordinate replicas (ignored with --standalone).",
)
@click.option(
    "--priority",
    "priority_text",
    default="0",
    show_default=True,
    metavar="N|auto",
    help="kopf peering priority: the live peer with the highest works, the others pause. 'auto' derives "
    "one from the pod name ($POD_NAME, else the host name) so the replicas of one Deployment differ "
    "(kopf pauses every peer when two share the highest priority).",
)
@click.option(
    "--peering-lifetime",
    type=click.IntRange(MIN_PEERING_LIFETIME_S, MAX_PEERING_LIFETIME_S),
    default=DEFAULT_PEERING_LIFETIME_S,
    show_default=True,
    metavar="SECONDS",
    help="How long this replica's keep-alive in the peering object counts (kopf's peering lifetime; "
    "each replica renews its own 5-10 s before it expires). A replica that dies without a goodbye "
    "(SIGKILL, OOM, a lost node) is taken over by a standby once its entry expires: within SECONDS, "
    "plus one cycle; a stopped one (SIGTERM) as soon as it exits. For Endpoint policies keep SECONDS "
    "under min(leaseSeconds, 2*(intervalSeconds + timeoutSeconds)) - intervalSeconds (25 s with the "
    "CRD's defaults), the least lease time a pod has left when the working replica dies; otherwise "
    "the pods go back to their startup GOGC/GOMEMLIMIT until the standby writes again. The dead "
    "replica's value is the one that counts: give every replica the same. Ignored with --standalone.",
)
@_port_option("--metrics-port", 9100, "Serve Prometheus metrics on this port (0: off).")
@_port_option("--liveness-port", 8081, "Serve the liveness probe at /healthz on this port (0: off).")
@click.option(
    "--bind-address",
    default="127.0.0.1",
    show_default=True,
    help="Address of the metrics and liveness servers (0.0.0.0 in a pod).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Kill switch: every GCPolicy only recommends, whatever its mode; nothing is applied.",
)
@click.option(
    "--min-interval-seconds",
    type=click.IntRange(1, MAX_MIN_INTERVAL_SECONDS),
    default=1,
    show_default=True,
    metavar="N",
    help="Floor under every GCPolicy's sampling.intervalSeconds: a policy asking for a shorter interval "
    "is sampled every N s (its windowSeconds kept at >= 3 intervals and, in Enforce/Endpoint, its "
    "leaseSeconds above one), shown in status.sampling with a Warning Event IntervalRaised. Protects "
    "the apiserver and the pods from policies with intervalSeconds: 1. The default, 1, is no floor. "
    "There is no operator-side default interval or window: the CRD's schema defaults (15 s, 300 s) "
    "are written into every policy by the apiserver.",
)
@click.option(
    "--promql-url-prefix",
    "promql_url_prefixes",
    multiple=True,
    metavar="PREFIX",
    help="Where a GCPolicy's qps.promql.url and guard.latency.promql.url may point (repeatable), e.g. "
    "http://prometheus.monitoring.svc:9090/. A policy whose URL is under none of them is refused "
    "(Degraded, reason PromQLNotAllowed) and nothing is queried. Unset: any URL (policy authors "
    "are trusted to name their Prometheus).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="KUBECONFIG",
    help="Kubeconfig to use [env KUBECONFIG]; in a pod the service account is used.",
)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
def operator(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    standalone: bool,
    peering_name: str,
    priority_text: str,
    peering_lifetime: int,
    metrics_port: int,
    liveness_port: int,
    bind_address: str,
    dry_run: bool,
    min_interval_seconds: int,
    promql_url_prefixes: tuple[str, ...],
    kubeconfig: str | None,
    verbose: bool,
) -> None:
    """Run the operator: a tuning loop per GCPolicy (gctuner.io/v1alpha1).

    \b
    Examples:
      gc-tuner operator --namespace shop --standalone
      gc-tuner operator --all-namespaces --metrics-port 9100 --bind-address 0.0.0.0
      gc-tuner operator -A --dry-run          # every policy recommends only
      gc-tuner operator -A --min-interval-seconds 10   # no policy samples more often than every 10 s
      gc-tuner operator -A --peering gc-tuner --priority auto --peering-lifetime 15   # a replica of several

    The CRD must be installed first: kubectl apply -f crds/gcpolicies.gctuner.io.yaml
    """
    priority = peering_priority(priority_text, os.environ.get("POD_NAME") or socket.gethostname())
    identity = peer_identity(os.environ)
    if identity is not None:
        os.environ["POD_ID"] = identity  # kopf names this peer by $POD_ID
    _check_scope(namespaces, all_namespaces)
    _select_kubeconfig(kubeconfig)
    _configure_client()
    _configure_logging(verbose)
    import kopf

    import gc_tuner.controller.handlers  # noqa: F401  (registers the handlers)
    from gc_tuner.controller.metrics import OperatorMetrics
    from gc_tuner.controller.runner import OperatorConfig

    config = OperatorConfig(dry_run, min_interval_seconds, promql_url_prefixes=promql_url_prefixes)
    metrics = OperatorMetrics()
    if metrics_port:
        _serve_metrics(metrics_port, bind_address)
    liveness = f"http://{bind_address}:{liveness_port}/healthz" if liveness_port else None
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = peering_lifetime
    if not standalone:
        _announce_peering(peering_name, identity, priority, peering_lifetime)
    kopf.run(
        settings=settings,
        standalone=standalone,
        peering_name=None if standalone else peering_name,
        priority=priority,
        clusterwide=all_namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness,
        memo=kopf.Memo(config=config, metrics=metrics),
    )


def _check_scope(namespaces: tuple[str, ...], all_namespaces: bool) -> None:
    if bool(namespaces) == all_namespaces:
        raise CLIError("give --namespace NS (repeatable) or --all-namespaces, not both and not neither")


def _select_kubeconfig(kubeconfig: str | None) -> None:
    """Fail early, before kopf starts, when no cluster configuration can be found."""
    if kubeconfig is not None:
        if not Path(kubeconfig).is_file():
            raise CLIError(f"--kubeconfig {kubeconfig}: no such file")
        # kopf's login and the kubernetes client both read KUBECONFIG.
        os.environ["KUBECONFIG"] = str(Path(kubeconfig).resolve())
    elif "KUBERNETES_SERVICE_HOST" not in os.environ:
        default = Path.home() / ".kube" / "config"
        if not default.is_file():
            raise CLIError("no --kubeconfig, no $KUBECONFIG, no ~/.kube/config and not in a pod")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per scrape of every pod drowns what matters; failures reach the log through status.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _serve_metrics(port: int, bind_address: str) -> None:
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=bind_address)
    except OSError as e:
        raise CLIError(f"cannot serve metrics on {bind_address}:{port}: {e.strerror or e}") from None


def _announce_peering(peering_name: str, identity: str | None, priority: int, lifetime: int) -> None:
    # kopf logs a pause only when a working replica turns standby; one that starts as the standby
    # stays silent, so say here how this replica takes part.
    logging.getLogger("gc_tuner.operator").info(
        f"peering {peering_name!r} as {identity or 'a generated id'} with priority {priority}: "
        "the live peer with the highest priority works, the others stand by "
        f"(a dead peer's entry expires after {lifetime} s)"
    )


def peer_identity(environ: Mapping[str, str]) -> str | None:
    """The name this replica has in the peering object: $POD_ID (kopf's own variable), else $POD_NAME.

    kopf otherwise makes one up (user@host/start-time/random), and then `kubectl get kopfpeering -o yaml`
    cannot tell which pod holds which priority, i.e. which replica works and which stands by.
    None outside a pod: kopf's default is right for an operator run by hand.
    """
    return environ.get("POD_ID") or environ.get("POD_NAME") or None


def peering_priority(text: str, identity: str) -> int:
    """An integer priority, or for 'auto' a stable one in 1..2^31-1 from `identity` (a pod name)."""
    if text == "auto":
        return zlib.crc32(identity.encode()) % (2**31 - 1) + 1
    try:
        return int(text)
    except ValueError:
        raise CLIError(f"--priority {text!r}: want an integer or 'auto'") from None


def _configure_client() -> None:
    from kubernetes import config

    try:
        if "KUBERNETES_SERVICE_HOST" in os.environ and "KUBECONFIG" not in os.environ:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config()  # type: ignore[no-untyped-call]
    except config.ConfigException as e:
        raise CLIError(f"cannot load the Kubernetes configuration: {e}") from None
