"""A real Kubernetes control plane as local processes: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, built from source once and cached (see build.py), started on free loopback ports
(see control_plane.py). `python -m e2e.cluster build|up|down|env` drives it from a shell.
"""
