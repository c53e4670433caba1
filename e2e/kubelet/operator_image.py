"""The chart's operator image on the test kubelet: `ghcr.io/gctuner/gc-tuner:*` runs `gc-tuner operator`
(the image's entrypoint) as a local process, with the pod's args and env, as the pod's ServiceAccount.

Credentials come from the kubelet itself (Kubelet.service_account_env): a TokenRequest for the pod's
ServiceAccount, bound to the pod, written into a kubeconfig passed as KUBECONFIG. The operator therefore
authenticates as system:serviceaccount:<namespace>:<name> and can do exactly what the chart's RBAC
grants, nothing more.

Networking: in a cluster the chart's `--bind-address=0.0.0.0` binds the pod's own network namespace, so
the metrics and liveness servers answer at the pod IP and two operator pods never collide. Here every
process shares the host's network, so this launcher binds the pod IP instead (the kubelet hands it
over in LISTEN_ENV, as for the workload image) and then execs the real `gc-tuner operator`: same PID,
same argv otherwise.

Run as `python -m e2e.kubelet.operator_image ARGS...`; the kubelet does that through `resolve()`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from e2e.kubelet.program import Program
from gc_tuner.cli.gobuild import repo_root

__all__ = ["LISTEN_ENV", "PATTERN", "operator_argv", "resolve"]

PATTERN = "ghcr.io/gctuner/gc-tuner:*"
LISTEN_ENV = "GC_TUNER_POD_LISTEN"
_ANY = ("0.0.0.0", "::", "[::]")


def resolve(_image: str) -> Program:
    return Program(
        (sys.executable, "-m", "e2e.kubelet.operator_image"),
        # PYTHONUNBUFFERED as the image's ENV sets it (Dockerfile): output reaches the log as written.
        env={"PYTHONPATH": str(repo_root()), "PYTHONUNBUFFERED": "1"},
        listen_env=LISTEN_ENV,
    )


def operator_argv(args: list[str], pod_ip: str) -> list[str]:
    """`gc-tuner operator ARGS` with a wildcard --bind-address replaced by the pod IP."""
    out: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--bind-address":
            value = next(it, "")
            out += [arg, pod_ip if value in _ANY else value]
        elif arg.startswith("--bind-address="):
            value = arg.partition("=")[2]
            out.append(f"--bind-address={pod_ip if value in _ANY else value}")
        else:
            out.append(arg)
    exe = Path(sys.executable).with_name("gc-tuner")
    return [str(exe), "operator", *out]


def main(args: list[str]) -> None:
    listen = os.environ.get(LISTEN_ENV, "")
    pod_ip = listen.rpartition(":")[0] or "127.0.0.1"
    argv = operator_argv(args, pod_ip)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
