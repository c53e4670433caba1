"""The harness's timing figures (build time, control plane start time), kept in a small JSON file so the
pytest terminal summary can print them even when fixture output is captured."""

from __future__ import annotations

import json
import time
from pathlib import Path

from gc_tuner.cli.gobuild import cache_dir

__all__ = ["figures_path", "read_all", "record"]


def figures_path() -> Path:
    return cache_dir() / "e2e-figures.json"


def read_all() -> dict[str, dict[str, float]]:
    try:
        data = json.loads(figures_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(name: str, seconds: float) -> None:
    data = read_all()
    data[name] = {"seconds": round(seconds, 2), "at": time.time()}
    path = figures_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
