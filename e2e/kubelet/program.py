"""What a container image runs on the test kubelet: a Program (argv, extra env, and the variable that
carries its listen address). Its own module so that the image table (images.py) and the image
launchers it registers (operator_image.py) both build on it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Program"]


@dataclass(frozen=True)
class Program:
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    # The variable the kubelet sets to `<podIP>:<first containerPort>` (see images.py), if any.
    listen_env: str | None = None
    # The variable the kubelet sets to the path of a JSON file with the pod, the container's spec and
    # its resolved env (what a real kubelet hands its container runtime), for a program that runs the
    # image in a container runtime of its own (e2e/kubelet/runc_container.py).
    container_file_env: str | None = None
