"""The Dockerfile's build context as `docker build` would send it (.dockerignore applied), and the
content hash of everything that decides the image: the cache key of e2e.image.builder."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

__all__ = ["context_files", "ignore_patterns", "ignored", "inputs_hash"]


def ignore_patterns(dockerignore: Path) -> list[str]:
    if not dockerignore.is_file():
        return []
    lines = (line.strip() for line in dockerignore.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _regex(pattern: str) -> re.Pattern[str]:
    # Docker's matching: `*` and `?` stay within one path element, `**` spans any number of them.
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(rel: str, patterns: list[str]) -> bool:
    """.dockerignore semantics: the last matching pattern wins, `!` re-includes, and a pattern that
    matches a directory covers everything below it."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for pat in patterns:
        neg = pat.startswith("!")
        rx = _regex(pat.lstrip("!").strip("/"))
        if any(rx.fullmatch(p) for p in prefixes):
            out = not neg
    return out


def context_files(root: Path) -> list[str]:
    """Paths (relative, sorted) of the files in the build context."""
    patterns = ignore_patterns(root / ".dockerignore")
    # An allow-list (`*` first) names every root the context can have: walk only those, not .venv/.git.
    if patterns and patterns[0] == "*":
        tops = [root / p[1:].strip("/") for p in patterns if p.startswith("!") and "*" not in p]
    else:
        tops = [p for p in root.iterdir() if p.name != ".git"]
    files: set[str] = set()
    for top in tops:
        paths = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in paths:
            rel = path.relative_to(root).as_posix()
            if path.is_file() and not ignored(rel, patterns):
                files.add(rel)
    return sorted(files)


def inputs_hash(root: Path, extra: dict[str, str]) -> str:
    """sha256 over the Dockerfile, .dockerignore, every context file (path, exec bit, content) and
    `extra` (base image key, build arguments)."""
    h = hashlib.sha256()
    for name in ("Dockerfile", ".dockerignore"):
        path = root / name
        h.update(f"{name}\0".encode() + (path.read_bytes() if path.is_file() else b"") + b"\0")
    for rel in context_files(root):
        path = root / rel
        mode = "x" if path.stat().st_mode & 0o111 else "-"
        h.update(f"{rel}\0{mode}\0".encode() + hashlib.sha256(path.read_bytes()).digest())
    for key in sorted(extra):
        h.update(f"{key}={extra[key]}\0".encode())
    return h.hexdigest()
