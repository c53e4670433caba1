"""Which source a report measured: the commit, and whether the tree differed from it.

A full run from a tree with uncommitted changes to tracked files measures code no commit holds:
the CLI refuses it (unless --allow-dirty, and then the report says DIRTY in its title). Files under
bench/results/ are left out: the run writes them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Provenance", "provenance"]


@dataclass(frozen=True, slots=True)
class Provenance:
    commit: str
    dirty_files: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.dirty_files and self.commit != "unknown"

    def line(self) -> str:
        if self.clean:
            return f"commit {self.commit}, clean tree"
        shown = ", ".join(self.dirty_files[:8]) + (" ..." if len(self.dirty_files) > 8 else "")
        return f"commit {self.commit}, DIRTY tree ({len(self.dirty_files)} changed: {shown})"


def _git(root: Path, *args: str) -> str | None:
    try:
        p = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout if p.returncode == 0 else None


def provenance(root: Path) -> Provenance:
    head = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if head is None or status is None:
        return Provenance("unknown", ("(not a git checkout)",))
    dirty = tuple(
        line[3:] for line in status.splitlines() if line.strip() and not line[3:].startswith("bench/results/")
    )
    return Provenance(head.strip(), dirty)
