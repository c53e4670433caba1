"""`python -m e2e.image build|info|run`

build [--force]   build the operator image from the Dockerfile, or find it in the cache
info              print the cached image's name, digest, size, layers and labels (JSON)
run [-- ARGS]     run the image once as the Helm chart runs it (default ARGS: --version)
"""

from __future__ import annotations

import json
import sys

from e2e.image.builder import cached_image, describe, ensure_image
from e2e.image.commands import ImageBuildError
from e2e.image.prerequisites import missing_for_run


def _run(args: list[str]) -> int:
    from e2e.image.runc_run import run_once

    missing = missing_for_run()
    if missing:
        print(f"error: cannot run the image here: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    result = run_once(ensure_image(), args or ["--version"])
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def main(argv: list[str]) -> int:
    cmd, rest = (argv[0], argv[1:]) if argv else ("", [])
    try:
        if cmd == "build":
            built = ensure_image(force="--force" in rest)
            print(json.dumps(describe(built), indent=1))
            return 0
        if cmd == "info":
            found = cached_image()
            if found is None:
                print("no image for the current sources in the cache: run `python -m e2e.image build`")
                return 1
            print(json.dumps(describe(found), indent=1))
            return 0
        if cmd == "run":
            return _run(rest[1:] if rest[:1] == ["--"] else rest)
    except ImageBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
