"""Running the build's commands (mmdebstrap, buildah, umoci): output to a log file, a heartbeat line
every 30 s so a long CI step visibly makes progress, and an ImageBuildError with the log's tail."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

__all__ = ["ImageBuildError", "log", "run_logged"]

_HEARTBEAT_S = 30.0


class ImageBuildError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[e2e.image] {msg}", flush=True)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


def run_logged(cmd: list[str], what: str, log_path: Path, *, capture: bool = False) -> str:
    """Run `cmd`, appending its output to `log_path` as it comes (with `capture`, its stdout is
    returned instead, and appended once it ends). Raises ImageBuildError."""
    start = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(_HEARTBEAT_S):
            log(f"  ... {what}: {time.monotonic() - start:.0f} s")

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as fh:
        fh.write(f"\n==== {what}: {' '.join(cmd)}\n")
        fh.flush()
        t = threading.Thread(target=beat, daemon=True)
        t.start()
        try:
            out = subprocess.PIPE if capture else fh
            proc = subprocess.run(cmd, stdout=out, stderr=fh, text=True, check=False)
        except OSError as e:
            raise ImageBuildError(f"{what}: cannot run {cmd[0]}: {e}") from e
        finally:
            done.set()
            t.join()
        fh.write(proc.stdout or "")
    if proc.returncode != 0:
        raise ImageBuildError(
            f"{what} failed (exit {proc.returncode}); end of {log_path}:\n{_tail(log_path)}"
        )
    return proc.stdout or ""
