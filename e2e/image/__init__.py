"""The operator image (Dockerfile), built and run for real without Docker: a Debian base made from the
Debian mirror with mmdebstrap, the Dockerfile built on it with `buildah bud`, exported as an OCI layout,
unpacked with umoci, and run with runc the way the Helm chart runs it (uid/gid 65532, read-only root,
no capabilities, no new privileges, the RuntimeDefault seccomp profile, an emptyDir at /tmp only).

`python -m e2e.image build` builds it (cached by content hash under ~/.cache/gc-tuner/image/);
`python -m e2e.image run -- ARGS` runs it once as the chart does.
"""
