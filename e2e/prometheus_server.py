"""A real Prometheus server for tests (Debian's `prometheus`, which scripts/test.sh installs)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from e2e.cluster.waits import wait_for

__all__ = ["Prometheus"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """Debian's `prometheus` on a free loopback port, scraping `targets` (pod name -> host:port) every
    second, each series labelled with its pod's name as `pod`."""

    def __init__(self, tmp: Path, targets: dict[str, str]) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.fail("the prometheus server is missing: apt-get install prometheus (scripts/test.sh does)")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "workload",
                    "static_configs": [
                        {"targets": [address], "labels": {"pod": name}} for name, address in targets.items()
                    ],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200, 60, "Prometheus ready"
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
