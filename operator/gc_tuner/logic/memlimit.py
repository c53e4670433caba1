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

# Kubernetes quantities are part of the policy model; re-exported here, where memory limits are derived.
from gc_tuner.model.quantity import MAX_INT64, MAX_QUANTITY_CHARS, parse_quantity, quantity_value

__all__ = [
    "GO_NO_LIMIT",
    "MAX_INT64",
    "MAX_QUANTITY_CHARS",
    "GoMemLimitError",
    "memory_limit_from",
    "parse_gomemlimit",
    "parse_quantity",
    "quantity_value",
    "render_gomemlimit",
    "same_limit",
]

GO_NO_LIMIT = MAX_INT64  # what GOMEMLIMIT=off and an unset limit read as in Go

_KiB = 1 << 10
_UNITS: tuple[tuple[str, int], ...] = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", _KiB))
# What both the old runtime atoi64 and strconv.ParseInt(s, 10, 64) read; \Z refuses a trailing "\n".
_GO_INT = re.compile(r"-?[0-9]+\Z")


class GoMemLimitError(ValueError):
    """A GOMEMLIMIT value Go would refuse (or gc-tuner must never render)."""


def _short(text: str, limit: int = 48) -> str:
    """`text` quoted, cut to `limit` characters: an error message must not echo a megabyte of input."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _go_parse_int(digits: str, whole: str) -> int:
    # str.isdigit() and int() accept Unicode digits, "_" and surrounding spaces; Go does not.
    if not _GO_INT.match(digits):
        plus = " (Go 1.22's runtime refuses a leading '+')" if digits.startswith("+") else ""
        raise GoMemLimitError(
            f"malformed GOMEMLIMIT {whole!r}: {digits!r} is not a decimal integer{plus} "
            "(Go accepts ASCII digits, then B, KiB, MiB, GiB or TiB)"
        )
    # Leading zeros are fine (Go reads "007MiB"), so convert only the significant digits, and refuse
    # more of them than int64 has before int() sees them: beyond 4300 digits int() raises a plain
    # ValueError that names no GOMEMLIMIT.
    significant = digits.lstrip("-").lstrip("0") or "0"
    if len(significant) > len(str(MAX_INT64)):
        raise GoMemLimitError(f"malformed GOMEMLIMIT {_short(whole)}: the number overflows int64")
    n = -int(significant) if digits.startswith("-") else int(significant)
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
