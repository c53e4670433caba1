#!/usr/bin/env bash
# Runs every test gc-tuner has. Called by `make test` (after the Python venv exists) and by .ci/run.
# Each stage prints a banner so a long CI log shows where time goes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
stage() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

stage "lint: ruff + mypy (strict on operator/)"
ruff check operator tests e2e bench
mypy

stage "Go: vet, race tests and a short fuzz run of the agent"
if [ -f agent/go.mod ]; then
  (cd agent && go vet ./... && go test -race -count=1 ./... && go test -run '^$' -fuzz 'FuzzDecodeRequest' -fuzztime=10s .)
fi
if [ -f e2e/workload/go.mod ]; then
  (cd e2e/workload && go vet ./... && go vet -tags gctuner_bytedance ./... && go test -race -count=1 ./... \
    && go test -count=1 -tags gctuner_bytedance -run Bytedance .)
fi

stage "Kubernetes binaries (built once, cached under ~/.cache/gc-tuner/)"
if [ -f e2e/cluster/build.py ]; then
  python -m e2e.cluster build
fi
if [ -f e2e/helm.py ]; then
  python -m e2e.helm build  # helm for the chart tests, from its Go module, cached beside the binaries
fi
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  # promtool (Debian's prometheus package) evaluates the chart's alert rules in e2e/test_chart.py;
  # the prometheus server is the PromQL QPS source in e2e/test_operator_promql.py.
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
fi

stage "operator image: built from the Dockerfile with buildah, run by the test kubelet through runc"
# Debian's runc, buildah, mmdebstrap and umoci (e2e/image/): the chart's e2e tests then run the real
# image. Where apt refuses them, the image tests skip naming the missing tool, and the chart's pods fall
# back to the host's gc-tuner (the test output says which ran).
image_tools=(runc buildah mmdebstrap umoci)
missing_tools=()
for tool in "${image_tools[@]}"; do command -v "$tool" >/dev/null || missing_tools+=("$tool"); done
if [ "${#missing_tools[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing_tools[@]}" || echo "warning: could not install ${missing_tools[*]}: the image tests will skip"
fi
if python -c 'import sys; from e2e.image.prerequisites import missing_for_build as m; sys.exit(bool(m()))'; then
  python -m e2e.image build  # or finds it in ~/.cache/gc-tuner/image/ by its content hash
fi

stage "pytest: unit, integration (real Go processes) and e2e (real control plane)"
python -m pytest -q -p no:cacheprovider "$@"
