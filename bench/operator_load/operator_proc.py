"""`gc-tuner operator` as a host process, from the working tree or from one commit exported aside.

Other engineers edit this tree while benchmarks run, and the venv's gc-tuner is an editable install
of it: a measurement of "the operator" would otherwise be of whatever happened to be on disk. With a
revision, `git archive` writes that commit's operator/ and crds/ to the work dir and the operator
runs from there (PYTHONPATH comes before the editable install's .pth entry on sys.path).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx

__all__ = ["OperatorProcess", "export_source"]

_MAIN = "import sys; from gc_tuner.cli.main import main; sys.exit(main())"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def export_source(root: Path, rev: str, dest: Path) -> str:
    """Write `rev`'s operator/ and crds/ under dest; returns the full commit hash."""
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tar = dest.with_suffix(".tar")
    subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", "-o", str(tar), commit, "operator", "crds"],
        check=True,
    )
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    tar.unlink()
    return commit


class OperatorProcess:
    """`gc-tuner operator --standalone --namespace NS`, its metrics and liveness on free ports."""

    def __init__(self, kubeconfig: Path, namespace: str, log: Path, source: Path | None) -> None:
        self.kubeconfig, self.namespace, self.log, self.source = kubeconfig, namespace, log, source
        self.metrics_port, self.liveness_port = _free_port(), _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        if self.source is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.source / "operator"), os.environ.get("PYTHONPATH", "")) if p
            )
        return env

    def imported_from(self) -> str:
        """Where this environment's `import gc_tuner` resolves: proof of the source measured."""
        out = subprocess.run(
            [sys.executable, "-c", "import gc_tuner; print(gc_tuner.__file__)"],
            env=self._env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return str(Path(out.stdout.strip()).parent)

    def start(self, timeout: float = 120) -> None:
        cmd = [sys.executable, "-c", _MAIN, "operator", "--standalone", "--namespace", self.namespace]
        cmd += ["--kubeconfig", str(self.kubeconfig), "--bind-address", "127.0.0.1"]
        cmd += ["--metrics-port", str(self.metrics_port), "--liveness-port", str(self.liveness_port)]
        with self.log.open("ab") as log:
            log.write(f"==== {time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env())
        deadline = time.monotonic() + timeout
        while not self._live():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator was not live within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def _live(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.liveness_port}/healthz"
            return httpx.get(url, timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10, trust_env=False).text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
