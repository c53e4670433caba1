"""A test kubelet: registers a Ready Node and runs the pods the scheduler binds to it as real processes.

It speaks to the real kube-apiserver (node, lease, pod status, events, deletion) and serves container
logs over HTTPS on the node's kubelet port so `kubectl logs` works through the apiserver. Images map to
programs the repo builds (see images.py). Run it with `python -m e2e.kubelet`.
"""
