# syntax=docker/dockerfile:1
# The gc-tuner operator image: `docker build -t ghcr.io/gctuner/gc-tuner:0.1.0 .`
# (or `make image`, which builds it with buildah on a Debian base made from the Debian mirror).
# Stage 1 builds the wheel, stage 2 installs it with its dependencies into a virtualenv, stage 3 is the
# runtime with only that virtualenv, running as a non-root user. The Helm chart (charts/gc-tuner) runs
# it with a read-only root filesystem, every capability dropped and an emptyDir at /tmp.
#
# BASE_IMAGE is any image with python3 (>= 3.11, with its venv module) and groupadd/useradd: the
# upstream slim Python image by default; `make image` passes a local Debian bookworm base.
# pip's settings for a private index or a TLS-intercepting proxy come in as the optional build secrets
# `pip.conf` and `pip-ca.crt` (mounted for the pip steps only, never stored in a layer), e.g.
#   docker build --secret id=pip.conf,src=$HOME/.config/pip/pip.conf -t ... .
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The base's own pip may be missing or marked externally managed (Debian): a build venv has its own.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca.crt,target=/run/secrets/pip-ca.crt \
    python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM ${BASE_IMAGE} AS venv
COPY pyproject.toml /src/pyproject.toml
# The dependencies first, from pyproject.toml alone: this layer stays cached while only the operator's
# code changes. Then gc-tuner's wheel (its dependencies are already there), the package list as the
# image's SBOM (`pip inspect`), the packages' own test suites dropped (scipy's and numpy's alone are
# tens of MB, never imported at run time), and bytecode compiled now, since the root filesystem is
# read-only at run time.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca.crt,target=/run/secrets/pip-ca.crt \
    python3 -m venv /opt/gc-tuner \
    && python3 -c 'import sys, tomllib; print(*tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"], sep="\n")' /src/pyproject.toml > /src/requirements.txt \
    && /opt/gc-tuner/bin/pip install --no-cache-dir -r /src/requirements.txt
COPY --from=wheel /dist/ /dist/
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca.crt,target=/run/secrets/pip-ca.crt \
    /opt/gc-tuner/bin/pip install --no-cache-dir /dist/gc_tuner-*.whl \
    && mkdir -p /opt/gc-tuner/share/sbom \
    && /opt/gc-tuner/bin/pip inspect --local > /opt/gc-tuner/share/sbom/pip-inspect.json \
    && find /opt/gc-tuner/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + \
    && /opt/gc-tuner/bin/python -m compileall -q /opt/gc-tuner/lib

FROM ${BASE_IMAGE}
# 65532 is the conventional "nonroot" UID/GID; the chart's securityContext uses the same numbers, and a
# numeric USER lets the kubelet verify runAsNonRoot.
RUN groupadd --system --gid 65532 gctuner \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin gctuner
COPY --from=venv /opt/gc-tuner /opt/gc-tuner
# Labels last: a new revision changes only this metadata, not the layers above.
ARG VERSION=0.1.0
ARG REVISION=""
LABEL org.opencontainers.image.title="gc-tuner" \
      org.opencontainers.image.description="Kubernetes operator that tunes the Go GC (GOGC/GOMEMLIMIT) of the services it watches" \
      org.opencontainers.image.source="https://github.com/gctuner/gc-tuner" \
      org.opencontainers.image.url="https://github.com/gctuner/gc-tuner" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      io.gctuner.image.sbom="/opt/gc-tuner/share/sbom/pip-inspect.json"
# The root filesystem is read-only at run time: no bytecode writes, HOME and MPLCONFIGDIR on the
# writable /tmp.
ENV PATH=/opt/gc-tuner/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
EXPOSE 9100 8081
ENTRYPOINT ["gc-tuner", "operator"]
