"""CanaryActuator for one GCPolicy: the EnvPatch canary Deployment (actuation/canary_deployment.py),
made from a fresh read of the target, through blocking calls run in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from gc_tuner.actuation.canary_deployment import (
    CanaryDeploymentError,
    KubeCanaryDeployments,
    canary_manifest,
    canary_name,
    canary_step,
)
from gc_tuner.actuation.envpatch import EnvPatchError
from gc_tuner.controller.kube import KUBE_TIMEOUT_S

__all__ = ["KubeCanary"]


def _refused(what: str, e: Exception) -> CanaryDeploymentError:
    status = getattr(e, "status", None)
    why = f"HTTP {status}: {getattr(e, 'reason', '')}" if status is not None else type(e).__name__
    return CanaryDeploymentError("CanaryDeploymentFailed", f"{what}: {why}")


class KubeCanary:
    def __init__(
        self,
        api_client: Any,
        namespace: str,
        *,
        policy: str,
        policy_uid: str,
        target: str,
        container: str | None,
    ) -> None:
        self.apps = KubeCanaryDeployments(api_client, timeout=KUBE_TIMEOUT_S)
        self.namespace, self.policy, self.uid = namespace, policy, policy_uid
        self.target, self.container = target, container
        self.name = canary_name(target)

    def _ensure(self, env: Mapping[str, str], replicas: int) -> str:
        existing = self.apps.read_if_exists(self.namespace, self.name)
        step = canary_step(existing, env, replicas)
        if step == "replace":
            self.apps.delete(self.namespace, self.name)
        elif step == "create":
            target = self.apps.read(self.namespace, self.target)
            body = canary_manifest(
                target,
                policy=self.policy,
                policy_uid=self.uid,
                container=self.container,
                env=env,
                replicas=replicas,
            )
            self.apps.create(self.namespace, body)
        return {"create": "created", "keep": "running", "replace": "replaced", "wait": "waiting"}[step]

    async def ensure(self, env: Mapping[str, str], replicas: int) -> str:
        try:
            return await asyncio.to_thread(self._ensure, env, replicas)
        except EnvPatchError as e:
            raise CanaryDeploymentError("CanaryDeploymentFailed", str(e)) from None
        except Exception as e:  # ApiException, or no answer at all (urllib3's many types)
            raise _refused(f"canary Deployment {self.namespace}/{self.name}", e) from None

    async def remove(self) -> bool:
        try:
            return await asyncio.to_thread(self.apps.delete, self.namespace, self.name)
        except Exception as e:
            raise _refused(f"deleting canary Deployment {self.namespace}/{self.name}", e) from None
