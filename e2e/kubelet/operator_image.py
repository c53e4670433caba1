"""The chart's operator image on the test kubelet: a pod whose image is `ghcr.io/gctuner/gc-tuner:*`.

Where runc is available (and root), the pod runs the real image: the kubelet resolves the image's tag
to the build of the Dockerfile last made under that tag (e2e.image.builder.tagged_image; built only
if there is none, so a pod never waits minutes for a rebuild) and e2e/kubelet/runc_container.py runs
it with runc from its rootfs, with the pod's env and
args, the pod's securityContext, its emptyDir volumes, and the projected ServiceAccount token at
/var/run/secrets/kubernetes.io/serviceaccount, where the operator's in-cluster login finds it.

On a machine without runc the image falls back to the host's `gc-tuner operator`, run as a local
process with the pod's args and env: credentials are then a TokenRequest token for the pod's
ServiceAccount in a kubeconfig passed as KUBECONFIG (Kubelet.service_account_env), so the operator
still authenticates as system:serviceaccount:<namespace>:<name> with only the chart's RBAC. The
kubelet's log and `runtime_choice()` say which was used; GC_TUNER_OPERATOR_RUNTIME=host|runc forces one.

Networking, both ways: in a cluster the chart's `--bind-address=0.0.0.0` binds the pod's own network
namespace, so the metrics and liveness servers answer at the pod IP and two operator pods never
collide. Here every pod shares the host's network (the pod IP is a loopback alias), so a wildcard
--bind-address is replaced by the pod IP (`bind_pod_ip`); every other argument is the pod's.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from e2e.kubelet.program import Program
from gc_tuner.cli.gobuild import repo_root

__all__ = [
    "CONTAINER_FILE_ENV",
    "LISTEN_ENV",
    "PATTERN",
    "RUNTIME_ENV",
    "bind_pod_ip",
    "operator_argv",
    "resolve",
    "runtime_choice",
]

PATTERN = "ghcr.io/gctuner/gc-tuner:*"
LISTEN_ENV = "GC_TUNER_POD_LISTEN"
CONTAINER_FILE_ENV = "GC_TUNER_CONTAINER_FILE"
RUNTIME_ENV = "GC_TUNER_OPERATOR_RUNTIME"
_ANY = ("0.0.0.0", "::", "[::]")
log = logging.getLogger("kubelet.images")


def runtime_choice() -> tuple[str, str]:
    """("runc" or "host", why). Raises RuntimeError when runc is forced but cannot run here."""
    from e2e.image.builder import tagged_image
    from e2e.image.prerequisites import missing_for_build, missing_for_run

    forced = os.environ.get(RUNTIME_ENV, "")
    if forced == "host":
        return "host", f"{RUNTIME_ENV}=host"
    missing = missing_for_run()
    if not missing and tagged_image(_chart_tag()) is None:
        missing = missing_for_build()
    if not missing:
        return "runc", "runc and the image (built from the Dockerfile) are available"
    why = f"missing {', '.join(missing)}"
    if forced == "runc":
        raise RuntimeError(f"{RUNTIME_ENV}=runc but the image cannot run here: {why}")
    return "host", why


def _chart_tag() -> str:
    import yaml

    return str(yaml.safe_load((repo_root() / "charts" / "gc-tuner" / "Chart.yaml").read_text())["appVersion"])


def _runc_program(image: str) -> Program:
    from e2e.image.builder import ensure_image, tagged_image

    built = tagged_image(image.rpartition(":")[2]) or ensure_image()
    if built.name != image:
        raise RuntimeError(f"image {image!r} is not built here (the Dockerfile builds {built.name})")
    return Program(
        (sys.executable, "-m", "e2e.kubelet.runc_container", "--image-dir", str(built.dir)),
        env={"PYTHONPATH": str(repo_root())},
        container_file_env=CONTAINER_FILE_ENV,
    )


def _host_program() -> Program:
    return Program(
        (sys.executable, "-m", "e2e.kubelet.operator_image"),
        # PYTHONUNBUFFERED as the image's ENV sets it (Dockerfile): output reaches the log as written.
        env={"PYTHONPATH": str(repo_root()), "PYTHONUNBUFFERED": "1"},
        listen_env=LISTEN_ENV,
    )


def resolve(image: str) -> Program:
    runtime, why = runtime_choice()
    log.info("image %s runs %s (%s)", image, "through runc" if runtime == "runc" else "on the host", why)
    return _runc_program(image) if runtime == "runc" else _host_program()


def bind_pod_ip(args: list[str], pod_ip: str) -> list[str]:
    """ARGS with a wildcard --bind-address replaced by the pod IP."""
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
    return out


def operator_argv(args: list[str], pod_ip: str) -> list[str]:
    """The host fallback's command: the venv's `gc-tuner operator ARGS`, bound to the pod IP."""
    exe = Path(sys.executable).with_name("gc-tuner")
    return [str(exe), "operator", *bind_pod_ip(args, pod_ip)]


def main(args: list[str]) -> None:
    listen = os.environ.get(LISTEN_ENV, "")
    pod_ip = listen.rpartition(":")[0] or "127.0.0.1"
    argv = operator_argv(args, pod_ip)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
