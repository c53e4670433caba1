"""Timestamps the kubelet writes into API objects (pod and container status, node conditions,
the node Lease)."""

from __future__ import annotations

from e2e.kubelet.logs import format_ts

__all__ = ["api_micro_timestamp", "api_timestamp"]


def api_timestamp() -> str:
    """Now as a metav1.Time: RFC 3339 in UTC, whole seconds."""
    return format_ts()[:19] + "Z"


def api_micro_timestamp() -> str:
    """Now as a metav1.MicroTime (a Lease's renewTime): exactly six fractional digits."""
    return format_ts()[:26] + "Z"
