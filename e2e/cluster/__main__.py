"""`python -m e2e.cluster build|up|down|env`

build  build (or find cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
up     start the control plane and a test kubelet in the background; print the shell environment
down   stop what `up` started
env    print `export KUBECONFIG=... PATH=...` for the running cluster (eval "$(python -m e2e.cluster env)")
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from e2e.cluster import build
from e2e.cluster.control_plane import ClusterStartError
from e2e.cluster.figures import record
from e2e.cluster.harness import start_cluster
from e2e.cluster.procs import kill_pid
from gc_tuner.cli.gobuild import cache_dir

_USAGE = __doc__ or ""


def _state_path() -> Path:
    # E2E_CLUSTER_STATE lets a test run its own `up`/`down` without touching a cluster a person
    # started by hand (there is one state file per cache dir otherwise).
    override = os.environ.get("E2E_CLUSTER_STATE")
    return Path(override) if override else cache_dir() / "cluster-state.json"


def _pid_matches(pid: int, name: str) -> bool:
    # Never signal a recycled PID: the process must still be the one `up` started.
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return name in cmd


def _read_state() -> dict[str, object] | None:
    try:
        data = json.loads(_state_path().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(state: dict[str, object]) -> bool:
    procs = state.get("procs", [])
    assert isinstance(procs, list)
    return bool(procs) and all(_pid_matches(int(p["pid"]), str(p["match"])) for p in procs)


def _print_env(state: dict[str, object]) -> None:
    print(f"export KUBECONFIG={state['kubeconfig']}")
    print(f'export PATH={state["bin_dir"]}:"$PATH"')


def cmd_up() -> int:
    state = _read_state()
    if state and _alive(state):
        print("# cluster already up", file=sys.stderr)
        _print_env(state)
        return 0
    if state:
        cmd_down()
    t0 = time.monotonic()
    # Progress goes to stderr: stdout carries only the `export` lines, so `eval "$(... up)"` works.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            build.ensure_built()
            t0 = time.monotonic()
            cluster = start_cluster(attached=False)
    except (build.BuildError, ClusterStartError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    record("control_plane_up", cluster.cp.started_in_s)
    state = {
        "dir": str(cluster.dir),
        "data_dir": str(cluster.cp.data_dir),
        "kubeconfig": str(cluster.kubeconfig),
        "bin_dir": str(cluster.kubectl.parent),
        "server": cluster.cp.server,
        "procs": [
            {"name": p.name, "pid": p.pid, "match": "e2e.kubelet" if p.name == "test-kubelet" else p.name}
            for p in cluster.cp.procs
        ],
    }
    _state_path().write_text(json.dumps(state, indent=1))
    print(f"# cluster up in {time.monotonic() - t0:.1f} s; logs in {cluster.cp.log_dir}", file=sys.stderr)
    _print_env(state)
    return 0


def cmd_down() -> int:
    state = _read_state()
    if state is None:
        print("no cluster recorded as up", file=sys.stderr)
        return 0
    procs = state.get("procs", [])
    assert isinstance(procs, list)
    for p in reversed(procs):
        if _pid_matches(int(p["pid"]), str(p["match"])):
            kill_pid(int(p["pid"]), grace=10.0)
    shutil.rmtree(str(state["data_dir"]), ignore_errors=True)
    _state_path().unlink(missing_ok=True)
    print(f"cluster stopped (logs kept in {state['dir']}/logs)", file=sys.stderr)
    return 0


def cmd_env() -> int:
    state = _read_state()
    if state is None or not _alive(state):
        print("error: no cluster is up; run `python -m e2e.cluster up`", file=sys.stderr)
        return 2
    _print_env(state)
    return 0


def main(argv: list[str]) -> int:
    commands = {"build": build.main, "up": cmd_up, "down": cmd_down, "env": cmd_env}
    if len(argv) != 1 or argv[0] not in commands:
        print(_USAGE.strip(), file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
