# syntax=docker/dockerfile:1
# The gc-tuner operator image: `docker build -t ghcr.io/gctuner/gc-tuner:0.1.0 .`
# Stage 1 builds the wheel, stage 2 installs it with its dependencies into a virtualenv, stage 3 is the
# slim runtime with only that virtualenv, running as a non-root user. The Helm chart
# (charts/gc-tuner) runs it with a read-only root filesystem and an emptyDir at /tmp.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m build --wheel --outdir /dist .

FROM ${PYTHON_IMAGE} AS venv
COPY --from=wheel /dist/ /dist/
# One wheel in /dist: gc-tuner's; its dependencies come from the package index, as pinned by pyproject.toml.
RUN python -m venv /opt/gc-tuner \
    && /opt/gc-tuner/bin/pip install --no-cache-dir /dist/gc_tuner-*.whl \
    && /opt/gc-tuner/bin/python -m compileall -q /opt/gc-tuner/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="gc-tuner" \
      org.opencontainers.image.description="Kubernetes operator that tunes the Go GC (GOGC/GOMEMLIMIT) of the services it watches" \
      org.opencontainers.image.source="https://github.com/gctuner/gc-tuner" \
      org.opencontainers.image.licenses="Apache-2.0"
# 65532 is the conventional "nonroot" UID/GID; the chart's securityContext uses the same numbers, and a
# numeric USER lets the kubelet verify runAsNonRoot.
RUN groupadd --system --gid 65532 gctuner \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin gctuner
COPY --from=venv /opt/gc-tuner /opt/gc-tuner
# Bytecode is compiled at build time: the root filesystem is read-only at run time. HOME and
# MPLCONFIGDIR point at the writable /tmp.
ENV PATH=/opt/gc-tuner/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["gc-tuner", "operator"]
