"""Which program a container image runs: the test kubelet's stand-in for a container registry.

Each entry maps an image pattern (fnmatch, e.g. `gc-tuner/workload:*`) to a resolver that returns the
program's argv (building it first if needed: the kubelet calls resolvers off the event loop). The pod's
`command` and `args` are appended to that argv. An image no entry matches fails like a missing image
(ErrImagePull). Extend the table with `register()`, in BUILTIN below, or with the kubelet's
`--image PATTERN=COMMAND` flag.

A real container listens on 0.0.0.0 inside its own network namespace; here a process shares the host's,
so a program that takes its listen address from an environment variable names it in `listen_env`, and
the kubelet sets it to `<podIP>:<first containerPort>` unless the pod sets that variable itself.
"""

from __future__ import annotations

import fnmatch
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from e2e.kubelet import operator_image
from e2e.kubelet.program import Program
from gc_tuner.cli.gobuild import build_go, repo_root

__all__ = [
    "BUILTIN",
    "Program",
    "Registry",
    "UnknownImageError",
    "default_registry",
    "testprog_binary",
    "workload_binary",
]


Resolver = Callable[[str], Program]


class UnknownImageError(LookupError):
    pass


class Registry:
    def __init__(self) -> None:
        self._entries: list[tuple[str, Resolver]] = []
        self._cache: dict[str, Program] = {}

    def register(self, pattern: str, resolver: Resolver) -> None:
        # Later registrations win, so a test or a flag can override a built-in mapping.
        self._entries.insert(0, (pattern, resolver))
        self._cache.clear()

    def patterns(self) -> list[str]:
        return [p for p, _ in self._entries]

    def resolve(self, image: str) -> Program:
        """The program for `image`; raises UnknownImageError naming the known patterns."""
        if image in self._cache:
            return self._cache[image]
        for pattern, resolver in self._entries:
            if fnmatch.fnmatchcase(image, pattern):
                prog = resolver(image)
                self._cache[image] = prog
                return prog
        known = ", ".join(sorted(self.patterns())) or "none"
        raise UnknownImageError(
            f'image "{image}" is not known to the test kubelet (it runs only images mapped to programs '
            f"this repo builds: {known})"
        )


def workload_binary() -> Path:
    """The reference Go workload (e2e/workload), built once per source hash."""
    return build_go(repo_root() / "e2e" / "workload", "workload", depends_on=("../../agent",))


def _workload(_image: str) -> Program:
    return Program((str(workload_binary()),), listen_env="WORKLOAD_LISTEN")


def testprog_binary() -> Path:
    """The kubelet's own probe program (e2e/kubelet/testdata/testprog), for the kubelet's tests."""
    return build_go(Path(__file__).parent / "testdata" / "testprog", "testprog")


def _testprog(_image: str) -> Program:
    return Program((str(testprog_binary()),), listen_env="TESTPROG_LISTEN")


def _python(_image: str) -> Program:
    # A process that is not Go at all; the pod's args are its interpreter arguments (PY_LISTEN: host:port).
    return Program((sys.executable,), listen_env="PY_LISTEN")


def command_resolver(command: str) -> Resolver:
    argv = tuple(shlex.split(command))

    def resolve(_image: str) -> Program:
        return Program(argv)

    return resolve


BUILTIN: dict[str, Resolver] = {
    "gc-tuner/workload:*": _workload,
    "gc-tuner/testprog:*": _testprog,
    "gc-tuner/python:*": _python,
}


def default_registry(extra: dict[str, str] | None = None) -> Registry:
    reg = Registry()
    for pattern, resolver in BUILTIN.items():
        reg.register(pattern, resolver)
    # The Helm chart's operator image (charts/gc-tuner).
    reg.register(operator_image.PATTERN, operator_image.resolve)
    for pattern, command in (extra or {}).items():
        reg.register(pattern, command_resolver(command))
    return reg
