"""Manifests the e2e tests share: a Deployment of the reference workload as the test kubelet runs it."""

from __future__ import annotations

from typing import Any

__all__ = ["WORKLOAD_IMAGE", "WORKLOAD_PORT", "workload_deployment"]

WORKLOAD_IMAGE = "gc-tuner/workload:dev"
WORKLOAD_PORT = 8080


def workload_deployment(
    name: str,
    *,
    replicas: int = 2,
    env: dict[str, str] | None = None,
    grace_s: int = 10,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment of the workload with a 1 s readiness probe on /healthz.

    The test kubelet sets WORKLOAD_LISTEN to <podIP>:8080 (see e2e/kubelet/images.py). The defaults
    keep the live heap small so GC cycles (and gctrace lines) come every second or two.
    """
    base_env = {"WORKLOAD_LIVE_MIB": "8", "WORKLOAD_QPS": "40"}
    base_env.update(env or {})
    pod_labels = {"app": name, **(labels or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "terminationGracePeriodSeconds": grace_s,
                    "containers": [
                        {
                            "name": "workload",
                            "image": WORKLOAD_IMAGE,
                            "ports": [{"name": "http", "containerPort": WORKLOAD_PORT}],
                            "env": [{"name": k, "value": v} for k, v in base_env.items()],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }
