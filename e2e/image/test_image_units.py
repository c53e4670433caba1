"""The image build's and the runc runner's pure parts: the build context and its hash, the host pip
settings handed to the build, the seccomp profile's translation, securityContext resolution, the runtime
spec, and Kubernetes' command/args rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from e2e.image.context import context_files, ignored, inputs_hash
from e2e.image.pip_settings import effective_settings, pip_conf_text
from e2e.image.runc_spec import DEFAULT_CAPABILITIES, BindMount, ContainerProcess, runtime_config
from e2e.image.seccomp import seccomp_for
from e2e.image.security import SecurityContextError, resolve_security
from e2e.kubelet.operator_image import bind_pod_ip
from e2e.kubelet.runc_container import container_argv
from gc_tuner.cli.gobuild import repo_root

ALLOW_LIST = ["*", "!pyproject.toml", "!operator/", "**/__pycache__", "**/*.pyc"]


def test_dockerignore_last_match_wins_and_directories_cover_their_files() -> None:
    assert ignored(".venv/bin/python", ALLOW_LIST)
    assert not ignored("operator/gc_tuner/cli/main.py", ALLOW_LIST)
    assert ignored("operator/gc_tuner/__pycache__/x.cpython-311.pyc", ALLOW_LIST)
    assert ignored("operator/gc_tuner/deep/x.pyc", ALLOW_LIST)
    assert not ignored("pyproject.toml", ALLOW_LIST) and ignored("pyproject.toml.bak", ALLOW_LIST)


def test_the_hash_follows_the_context_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("\n".join(ALLOW_LIST) + "\n")
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "operator" / "pkg").mkdir(parents=True)
    (tmp_path / "operator" / "pkg" / "a.py").write_text("A = 1\n")
    assert context_files(tmp_path) == ["operator/pkg/a.py", "pyproject.toml"]
    first = inputs_hash(tmp_path, {"base": "b1"})
    (tmp_path / "notes.txt").write_text("outside the context\n")
    (tmp_path / "operator" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "operator" / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert inputs_hash(tmp_path, {"base": "b1"}) == first
    assert inputs_hash(tmp_path, {"base": "b2"}) != first
    (tmp_path / "operator" / "pkg" / "a.py").write_text("A = 2\n")
    assert inputs_hash(tmp_path, {"base": "b1"}) != first
    (tmp_path / "operator" / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    assert inputs_hash(tmp_path, {"base": "b1"}) != first


def test_pip_settings_keep_the_index_and_the_ca_and_drop_host_paths() -> None:
    listing = (
        "global.cert='/etc/ssl/certs/ca-certificates.crt'\n"
        "global.index-url='https://mirror.example/simple'\n"
        ":env:.find-links='/opt/wheels'\n"
        ":env:.default-timeout='180'\n"
    )
    got = effective_settings(listing, {"PIP_EXTRA_INDEX_URL": "https://extra.example/simple"})
    assert got == {
        "cert": "/etc/ssl/certs/ca-certificates.crt",
        "index-url": "https://mirror.example/simple",
        "timeout": "180",
        "extra-index-url": "https://extra.example/simple",
    }
    text = pip_conf_text(got, "/run/secrets/pip-ca.crt")
    assert "cert = /run/secrets/pip-ca.crt" in text and "/etc/ssl" not in text and "find-links" not in text
    assert "cert" not in pip_conf_text(got, None)


PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {
            "names": ["bpf"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        },
        {"names": ["new_one"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.1"}},
    ],
}


def test_seccomp_profile_for_the_architecture_and_the_capabilities_held() -> None:
    none = seccomp_for(PROFILE, set(), "amd64", "6.18.4")
    assert none["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert none["defaultAction"] == "SCMP_ACT_ERRNO" and none["defaultErrnoRet"] == 38
    rules = [(r["names"], r["action"], r.get("errnoRet")) for r in none["syscalls"]]
    assert rules == [
        (["read", "write"], "SCMP_ACT_ALLOW", None),
        (["arch_prctl"], "SCMP_ACT_ALLOW", None),
        (["bpf"], "SCMP_ACT_ERRNO", 1),
    ]
    admin = seccomp_for(PROFILE, {"CAP_SYS_ADMIN"}, "arm64", "7.2.0")
    assert admin["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert [r["names"] for r in admin["syscalls"]] == [["read", "write"], ["bpf"], ["new_one"]]


_VALUES = yaml.safe_load((repo_root() / "charts" / "gc-tuner" / "values.yaml").read_text())
CHART_POD, CHART_CONTAINER = _VALUES["podSecurityContext"], _VALUES["securityContext"]


def test_the_charts_security_context_resolves_to_a_locked_down_process() -> None:
    sec = resolve_security(CHART_POD, CHART_CONTAINER, "65532:65532")
    assert (sec.uid, sec.gid, sec.groups) == (65532, 65532, (65532,))
    assert sec.capabilities == () and sec.no_new_privileges and sec.read_only_root
    assert sec.seccomp == "RuntimeDefault"


def test_security_context_defaults_and_refusals() -> None:
    # Nothing set: the image's user, the runtime's default capabilities, privilege escalation allowed.
    sec = resolve_security({}, {}, "1000:2000")
    assert (sec.uid, sec.gid, sec.groups) == (1000, 2000, ())
    assert sec.capabilities == DEFAULT_CAPABILITIES and not sec.no_new_privileges and not sec.read_only_root
    assert sec.seccomp == "Unconfined"
    # The container's fields win over the pod's; drop/add adjust the default set.
    sec = resolve_security(
        {"runAsUser": 5}, {"runAsUser": 6, "capabilities": {"drop": ["NET_RAW"], "add": ["SYS_TIME"]}}, ""
    )
    assert sec.uid == 6 and "CAP_NET_RAW" not in sec.capabilities and sec.capabilities[-1] == "CAP_SYS_TIME"
    with pytest.raises(SecurityContextError, match="runAsNonRoot"):
        resolve_security({"runAsNonRoot": True}, {}, "")
    with pytest.raises(SecurityContextError, match="not numeric"):
        resolve_security({}, {}, "gctuner")
    with pytest.raises(SecurityContextError, match="Localhost"):
        resolve_security({"seccompProfile": {"type": "Localhost"}}, {}, "1")


def test_runtime_config_carries_the_process_settings(tmp_path: Path) -> None:
    p = ContainerProcess(
        args=["gc-tuner", "operator"], env={"A": "1"}, uid=65532, gid=65532, groups=(65532,),
        capabilities=(), no_new_privileges=True, read_only_root=True,
        seccomp={"defaultAction": "SCMP_ACT_ERRNO"},
        mounts=(BindMount("/tmp", tmp_path, read_only=False),), memory_limit=512 << 20, hostname="pod-a",
    )  # fmt: skip
    cfg = json.loads(json.dumps(runtime_config(tmp_path / "rootfs", p)))
    assert cfg["process"]["user"] == {"uid": 65532, "gid": 65532, "additionalGids": [65532]}
    assert cfg["process"]["noNewPrivileges"] is True and cfg["root"]["readonly"] is True
    assert all(v == [] for v in cfg["process"]["capabilities"].values())
    assert cfg["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ERRNO"}
    assert cfg["linux"]["resources"]["memory"] == {"limit": 512 << 20}
    assert {n["type"] for n in cfg["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount"}
    (tmp_mount,) = [m for m in cfg["mounts"] if m["destination"] == "/tmp"]
    assert tmp_mount["type"] == "bind" and "rw" in tmp_mount["options"]
    assert cfg["hostname"] == "pod-a" and cfg["process"]["env"] == ["A=1"]
    # A root process holds its capabilities; a non-root one only in the bounding set.
    root = runtime_config(tmp_path, ContainerProcess(args=["x"], env={}, uid=0, gid=0))
    assert root["process"]["capabilities"]["effective"] == list(DEFAULT_CAPABILITIES)
    user = runtime_config(tmp_path, ContainerProcess(args=["x"], env={}, uid=1, gid=1))
    assert user["process"]["capabilities"]["effective"] == []
    assert user["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)


def test_command_replaces_the_entrypoint_and_args_the_cmd() -> None:
    config = {"Entrypoint": ["gc-tuner", "operator"], "Cmd": ["--help"]}
    assert container_argv(config, {}) == ["gc-tuner", "operator", "--help"]
    assert container_argv(config, {"args": ["--standalone"]}) == ["gc-tuner", "operator", "--standalone"]
    assert container_argv(config, {"args": []}) == ["gc-tuner", "operator"]
    assert container_argv(config, {"command": ["python3"], "args": ["-V"]}) == ["python3", "-V"]
    assert container_argv(config, {"command": ["python3"]}) == ["python3"]


def test_a_wildcard_bind_address_becomes_the_pod_ip() -> None:
    args = ["--bind-address=0.0.0.0", "--x", "--bind-address", "::", "--bind-address=10.0.0.1"]
    assert bind_pod_ip(args, "127.0.5.9") == [
        "--bind-address=127.0.5.9", "--x", "--bind-address", "127.0.5.9", "--bind-address=10.0.0.1",
    ]  # fmt: skip
