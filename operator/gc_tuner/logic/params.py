"""Checks shared by the strategies' parameter dataclasses, so their errors read alike."""

from __future__ import annotations

__all__ = ["require_positive_order"]


def require_positive_order(params: object, low: str, high: str) -> None:
    """Raises ValueError unless 0 < params.<low> <= params.<high>, naming the class and both fields."""
    lo, hi = getattr(params, low), getattr(params, high)
    if not 0 < lo <= hi:
        raise ValueError(f"{type(params).__name__} needs 0 < {low} <= {high}, got {lo} and {hi}")
