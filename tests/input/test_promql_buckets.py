"""guard.latency.promql: per-pod cumulative buckets from an instant vector (input/promql.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gc_tuner.input.promql import MAX_BUCKETS, parse_promql_buckets
from gc_tuner.net.errors import SourceFormatError


def vector(*series: tuple[dict[str, str], Any]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [1.0, v]} for m, v in series]},
    }


def test_buckets_are_grouped_by_pod_and_sorted_by_le() -> None:
    doc = vector(
        ({"pod": "a", "le": "+Inf"}, "30"),
        ({"pod": "a", "le": "0.1"}, "20"),
        ({"pod": "b", "le": "0.1"}, "5"),
        ({"pod": "a", "le": "0.005"}, "2"),
        ({"pod": "b", "le": "+Inf"}, "9"),
    )
    got = parse_promql_buckets(doc, "pod")
    assert got == {"a": ((0.005, 2.0), (0.1, 20.0), (math.inf, 30.0)), "b": ((0.1, 5.0), (math.inf, 9.0))}


def test_another_pod_label_is_read() -> None:
    got = parse_promql_buckets(vector(({"kubernetes_pod_name": "a", "le": "1"}, "3")), "kubernetes_pod_name")
    assert got == {"a": ((1.0, 3.0),)}


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (vector(({"le": "1"}, "3")), "data.result[0].metric.pod", "aggregate by (pod, le)"),
        (vector(({"pod": "a"}, "3")), "data.result[0].metric.le", "no le label"),
        (vector(({"pod": "a", "le": "x"}, "3")), "data.result[0].metric.le", "not a number"),
        (vector(({"pod": "a", "le": "1"}, "NaN")), "data.result[0].value[1]", "not a finite number"),
        (
            vector(({"pod": "a", "le": "1"}, "3"), ({"pod": "a", "le": "1.0"}, "4")),
            "data.result[1]",
            "two series for a le=1.0",
        ),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}},
            "data.resultType",
            "vector",
        ),
        ({"status": "error", "error": "bad"}, "status", "query failed"),
    ],
)
def test_what_cannot_be_read_as_buckets_is_named(doc: Any, field: str, words: str) -> None:
    with pytest.raises(SourceFormatError) as e:
        parse_promql_buckets(doc, "pod")
    assert e.value.field == field and words in str(e.value), str(e.value)


def test_a_pod_with_too_many_buckets_is_refused() -> None:
    doc = vector(*(({"pod": "a", "le": str(i)}, "1") for i in range(MAX_BUCKETS + 1)))
    with pytest.raises(SourceFormatError, match="more than"):
        parse_promql_buckets(doc, "pod")
