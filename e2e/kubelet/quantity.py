"""Kubernetes resource quantities ("512Mi", "250m", "1e3") as exact fractions."""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["parse_quantity", "scaled_ceil"]

_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_RE = re.compile(r"^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def parse_quantity(text: str | int | float) -> Fraction:
    s = str(text).strip()
    m = _RE.match(s)
    if not m:
        raise ValueError(f"invalid resource quantity {text!r}")
    number, exp, suffix = m.groups()
    try:
        value = Fraction(number)
    except ValueError:
        raise ValueError(f"invalid resource quantity {text!r}") from None
    if exp:
        return value * Fraction(10) ** int(exp[1:])
    return value * _SUFFIX[suffix or ""]


def scaled_ceil(value: Fraction, divisor: Fraction) -> int:
    """The kubelet rounds resourceFieldRef values up to whole divisors (a 1.5Mi limit in Mi reads 2)."""
    if divisor <= 0:
        raise ValueError(f"divisor must be positive, got {divisor}")
    return math.ceil(value / divisor)
