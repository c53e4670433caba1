"""The host pip's index settings, handed to the image build as the Dockerfile's optional `pip.conf`
and `pip-ca.crt` build secrets: pip inside the build must reach the same index (a private mirror, a
TLS-intercepting proxy with its own CA) the host's pip reaches. Secrets are mounted for the RUN steps
that need them and never stored in a layer."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BuildSecrets", "build_secrets", "effective_settings", "pip_conf_text"]

# Where the Dockerfile mounts the CA secret.
CA_IN_BUILD = "/run/secrets/pip-ca.crt"
# Options that say where packages come from and how to reach it; host-only ones (find-links, cache
# paths) mean nothing inside the build.
_KEPT = ("index-url", "extra-index-url", "trusted-host", "cert", "proxy", "timeout", "retries")
_ALIASES = {"default-timeout": "timeout"}


@dataclass(frozen=True)
class BuildSecrets:
    pip_conf: Path
    ca: Path | None

    def buildah_args(self) -> list[str]:
        args = ["--secret", f"id=pip.conf,src={self.pip_conf}"]
        if self.ca is not None:
            args += ["--secret", f"id=pip-ca.crt,src={self.ca}"]
        return args


def effective_settings(config_list: str, environ: dict[str, str]) -> dict[str, str]:
    """`pip config list` output plus PIP_* variables, reduced to the kept options (later sources win:
    files, then environment, as pip applies them)."""
    out: dict[str, str] = {}
    for line in config_list.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        option = _ALIASES.get(key.rpartition(".")[2], key.rpartition(".")[2])
        section = key.rpartition(".")[0]
        if option in _KEPT and section in ("global", "install", ":env:"):
            out[option] = value.strip().strip("'\"")
    for var, value in environ.items():
        if var.startswith("PIP_"):
            option = var[4:].lower().replace("_", "-")
            option = _ALIASES.get(option, option)
            if option in _KEPT:
                out[option] = value
    if "proxy" not in out and environ.get("HTTPS_PROXY"):
        out["proxy"] = environ["HTTPS_PROXY"]
    return out


def pip_conf_text(settings: dict[str, str], ca_in_build: str | None) -> str:
    lines = ["[global]"]
    for option in _KEPT:
        if option == "cert":
            if ca_in_build is not None:
                lines.append(f"cert = {ca_in_build}")
        elif option in settings:
            lines.append(f"{option} = {settings[option]}")
    lines.append("disable-pip-version-check = true")
    return "\n".join(lines) + "\n"


def build_secrets(workdir: Path) -> BuildSecrets:
    """Write the build's pip.conf into `workdir` (kept out of the image and of the cache key)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    settings = effective_settings(proc.stdout, dict(os.environ))
    ca = Path(settings["cert"]) if "cert" in settings and Path(settings["cert"]).is_file() else None
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "pip.conf"
    conf.write_text(pip_conf_text(settings, CA_IN_BUILD if ca else None))
    conf.chmod(0o600)
    return BuildSecrets(conf, ca)
