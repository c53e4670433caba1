"""GOMEMLIMIT: render it only in the syntax Go accepts, validate it exactly as Go does, and derive it
from a container's memory limit.

A malformed GOMEMLIMIT is a fatal error at Go program start (exit 2), so an operator that writes one
into a Deployment crash-loops every pod. `parse_gomemlimit` mirrors the runtime's `readGOMEMLIMIT` and
`parseByteCount` (src/runtime/mgcpacer.go, src/runtime/string.go, Go 1.19-1.27), rule for rule, and
accepts what EVERY one of those releases accepts, since gc-tuner cannot know which Go built a pod:

- `off` means no limit (math.MaxInt64); any other spelling of it (`OFF`, `Off`) is malformed.
- Otherwise: a decimal integer — an optional leading `-` (only `-0` survives the sign check), ASCII
  digits only, no underscores, no spaces, no hex — then an optional suffix `B`, `KiB`, `MiB`, `GiB`
  or `TiB` (case-sensitive).
- The value must fit int64 both before and after multiplying by the unit.

Where releases differ, the stricter one wins. Go 1.22's runtime reads the digits with its own
`atoi64`, which has no `+` and takes a lone `-` as 0; Go 1.26 and 1.27 use strconv.ParseInt, which
takes a leading `+` and refuses a lone `-`. So `+1MiB` (fatal on 1.22) and `-KiB` (fatal on 1.26)
are both refused here.

One deliberate difference: Go treats an empty GOMEMLIMIT as unset; `parse_gomemlimit("")` rejects it,
because an empty string is never a limit gc-tuner should write.

`render_gomemlimit` writes the largest binary unit that divides the value exactly (`1GiB`,
`966367232B`), so the rendering is always exact and always accepted by Go.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = [
    "GO_NO_LIMIT",
    "MAX_INT64",
    "GoMemLimitError",
    "memory_limit_from",
    "parse_gomemlimit",
    "parse_quantity",
    "render_gomemlimit",
    "same_limit",
]

MAX_INT64 = (1 << 63) - 1
GO_NO_LIMIT = MAX_INT64  # what GOMEMLIMIT=off and an unset limit read as in Go

_KiB = 1 << 10
_UNITS: tuple[tuple[str, int], ...] = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", _KiB))
# What both the old runtime atoi64 and strconv.ParseInt(s, 10, 64) read; \Z refuses a trailing "\n".
_GO_INT = re.compile(r"-?[0-9]+\Z")


class GoMemLimitError(ValueError):
    """A GOMEMLIMIT value Go would refuse (or gc-tuner must never render)."""


def _go_parse_int(digits: str, whole: str) -> int:
    # str.isdigit() and int() accept Unicode digits, "_" and surrounding spaces; Go does not.
    if not _GO_INT.match(digits):
        plus = " (Go 1.22's runtime refuses a leading '+')" if digits.startswith("+") else ""
        raise GoMemLimitError(
            f"malformed GOMEMLIMIT {whole!r}: {digits!r} is not a decimal integer{plus} "
            "(Go accepts ASCII digits, then B, KiB, MiB, GiB or TiB)"
        )
    n = int(digits)
    if n > MAX_INT64 or n < -(1 << 63):
        raise GoMemLimitError(f"malformed GOMEMLIMIT {whole!r}: {digits} overflows int64")
    if n < 0:
        raise GoMemLimitError(f"malformed GOMEMLIMIT {whole!r}: negative")
    return n


def parse_gomemlimit(s: str) -> int:
    """The limit in bytes that Go would read from GOMEMLIMIT=s; GoMemLimitError where Go exits 2."""
    if s == "":
        raise GoMemLimitError("empty GOMEMLIMIT: Go treats it as unset, not as a limit")
    if s == "off":
        return GO_NO_LIMIT
    last = s[-1]
    if "0" <= last <= "9":
        return _go_parse_int(s, s)
    if last != "B" or len(s) < 2:
        raise GoMemLimitError(f"malformed GOMEMLIMIT {s!r}: must end in a digit or B/KiB/MiB/GiB/TiB")
    before = s[-2]
    if "0" <= before <= "9":
        return _go_parse_int(s[:-1], s)
    if before != "i" or len(s) < 4:
        raise GoMemLimitError(
            f"malformed GOMEMLIMIT {s!r}: unit must be B, KiB, MiB, GiB or TiB (binary units, case-sensitive)"
        )
    multipliers = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    mult = multipliers.get(s[-3])
    if mult is None:
        raise GoMemLimitError(
            f"malformed GOMEMLIMIT {s!r}: unit must be B, KiB, MiB, GiB or TiB (binary units, case-sensitive)"
        )
    n = _go_parse_int(s[:-3], s) * mult
    if n > MAX_INT64:
        raise GoMemLimitError(f"malformed GOMEMLIMIT {s!r}: {n} bytes overflows int64")
    return n


def render_gomemlimit(n_bytes: int) -> str:
    """`n_bytes` in the largest binary unit that divides it exactly; always accepted by Go."""
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int):
        raise GoMemLimitError(f"GOMEMLIMIT must be an integer number of bytes, got {n_bytes!r}")
    if not 0 <= n_bytes <= MAX_INT64:
        raise GoMemLimitError(f"GOMEMLIMIT must be within 0..{MAX_INT64} bytes, got {n_bytes}")
    text = f"{n_bytes}B"
    if n_bytes > 0:
        for suffix, size in _UNITS:
            if n_bytes % size == 0:
                text = f"{n_bytes // size}{suffix}"
                break
    # The promise is "never render what Go refuses": check it rather than trust it.
    if parse_gomemlimit(text) != n_bytes:  # pragma: no cover - would be a bug in this module
        raise GoMemLimitError(f"internal error: {text!r} does not read back as {n_bytes}")
    return text


# Kubernetes resource.Quantity: <signed decimal><suffix>, suffix binary (Ki..Ei), decimal SI
# (n u m "" k M G T P E) or a decimal exponent (e3, E-2). apimachinery's quantity.go grammar.
_QUANTITY = re.compile(
    r"(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>[A-Za-z]*|[eE][+-]?[0-9]+)\Z"
)
_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(q: str) -> int:
    """Bytes in a Kubernetes memory quantity (`1Gi`, `512Mi`, `1e9`, `1.5G`, `128974848`).

    Fractional byte counts round up, as Quantity.Value() does. Negative quantities are refused:
    a memory limit cannot be negative.
    """
    if not isinstance(q, str):
        raise ValueError(f"memory quantity must be a string, got {q!r}")
    m = _QUANTITY.match(q)
    if m is None or m.group("num") in {"+", "-", "."}:
        raise ValueError(
            f"invalid memory quantity {q!r}: expected a number with an optional suffix "
            "(Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E or an exponent like e9)"
        )
    num = Fraction(m.group("num"))
    suffix = m.group("suffix")
    if suffix in _BINARY:
        value = num * _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = num * Fraction(10) ** _DECIMAL[suffix]
    elif suffix[:1] in {"e", "E"} and len(suffix) > 1:
        exp = int(suffix[1:])
        if abs(exp) > 64:
            raise ValueError(f"invalid memory quantity {q!r}: exponent {exp} is out of range")
        value = num * Fraction(10) ** exp
    else:
        raise ValueError(
            f"invalid memory quantity {q!r}: unknown suffix {suffix!r} "
            "(use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P or E; note K and KB are not Kubernetes units)"
        )
    if value < 0:
        raise ValueError(f"invalid memory quantity {q!r}: negative")
    n = -(-value.numerator // value.denominator)  # ceil, like Quantity.Value()
    if n > MAX_INT64:
        raise ValueError(f"invalid memory quantity {q!r}: larger than int64 bytes")
    return n


def memory_limit_from(container_limit_bytes: int, percent: int) -> int:
    """GOMEMLIMIT for a container limit: percent × limit, rounded DOWN to a whole MiB.

    Rounding down keeps the limit at or below the requested share and makes the rendering a short
    `NMiB`; it also gives the runtime's headroom a little more room under the container limit.
    """
    if isinstance(container_limit_bytes, bool) or not isinstance(container_limit_bytes, int):
        raise ValueError(f"container memory limit must be an integer of bytes, got {container_limit_bytes!r}")
    if isinstance(percent, bool) or not isinstance(percent, int):
        raise ValueError(f"percent must be an integer, got {percent!r}")
    if container_limit_bytes <= 0:
        raise ValueError(f"container memory limit must be > 0 bytes, got {container_limit_bytes}")
    if not 1 <= percent <= 100:
        raise ValueError(f"percent must be within 1..100, got {percent}")
    share = container_limit_bytes * percent // 100
    mib = share // (1 << 20) * (1 << 20)
    if mib == 0:
        raise ValueError(
            f"{percent}% of {container_limit_bytes} bytes is below 1 MiB; "
            "a limit that small keeps the GC running"
        )
    return min(mib, MAX_INT64 // (1 << 20) * (1 << 20))


def same_limit(a: str, b: str | None) -> bool:
    """Whether two GOMEMLIMIT renderings mean the same number of bytes (`1GiB` == `1024MiB`)."""
    if b is None:
        return False
    try:
        return parse_gomemlimit(a) == parse_gomemlimit(b)
    except GoMemLimitError:
        return False
