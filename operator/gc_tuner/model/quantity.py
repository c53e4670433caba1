"""Kubernetes resource quantities (`1.5Gi`, `512Mi`, `1e9`), read exactly as apimachinery does.

Part of the model because the policy validates `memoryLimit.fixed` with them, and the loop reads
containers' memory limits with the same rules.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["MAX_INT64", "MAX_QUANTITY_CHARS", "parse_quantity", "quantity_value"]

MAX_INT64 = (1 << 63) - 1
_EXPONENT = re.compile(r"[eE][+-]?[0-9]+")  # `e9`; not `EB`, which is an unknown suffix

# Kubernetes resource.Quantity: <signed decimal><suffix>, suffix binary (Ki..Ei), decimal SI
# (n u m "" k M G T P E) or a decimal exponent (e3, E-2). apimachinery's quantity.go grammar.
_QUANTITY = re.compile(
    r"(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>[A-Za-z]*|[eE][+-]?[0-9]+)\Z"
)
_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


# Longer than any quantity a person or the apiserver writes; it keeps int() and Fraction() far from
# Python's 4300-digit conversion limit, whose plain ValueError would name no quantity.
MAX_QUANTITY_CHARS = 128


def quantity_value(q: str, *, max_exponent: int = 64) -> Fraction:
    """The exact value of a Kubernetes quantity (`1.5Gi` -> 1610612736), signed, before any rounding.

    Exact rational arithmetic: never a float, so never inf or OverflowError. ValueError, naming `q`,
    for a malformed quantity, one longer than MAX_QUANTITY_CHARS, or an exponent (`e9`) beyond
    ±max_exponent (which bounds the arithmetic).
    """
    if not isinstance(q, str):
        raise ValueError(f"memory quantity must be a string, got {q!r}")
    if len(q) > MAX_QUANTITY_CHARS:
        raise ValueError(
            f"invalid memory quantity {q[:24]!r}...: {len(q)} characters, at most {MAX_QUANTITY_CHARS}"
        )
    m = _QUANTITY.match(q)
    if m is None or m.group("num") in {"+", "-", "."}:
        raise ValueError(
            f"invalid memory quantity {q!r}: expected a number with an optional suffix "
            "(Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E or an exponent like e9)"
        )
    num = Fraction(m.group("num"))
    suffix = m.group("suffix")
    if suffix in _BINARY:
        return num * _BINARY[suffix]
    if suffix in _DECIMAL:
        return num * Fraction(10) ** _DECIMAL[suffix]
    if _EXPONENT.fullmatch(suffix):
        exp = int(suffix[1:])
        if abs(exp) > max_exponent:
            raise ValueError(f"invalid memory quantity {q!r}: exponent {exp} is out of range")
        return num * Fraction(10) ** exp
    raise ValueError(
        f"invalid memory quantity {q!r}: unknown suffix {suffix!r} "
        "(use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P or E; note K and KB are not Kubernetes units)"
    )


def parse_quantity(q: str) -> int:
    """Bytes in a Kubernetes memory quantity (`1Gi`, `512Mi`, `1e9`, `1.5G`, `128974848`).

    Fractional byte counts round up, as Quantity.Value() does. Negative quantities are refused:
    a memory limit cannot be negative. Every failure is a ValueError naming the quantity.
    """
    value = quantity_value(q)
    if value < 0:
        raise ValueError(f"invalid memory quantity {q!r}: negative")
    n = -(-value.numerator // value.denominator)  # ceil, like Quantity.Value()
    if n > MAX_INT64:
        raise ValueError(f"invalid memory quantity {q!r}: larger than int64 bytes")
    return n
