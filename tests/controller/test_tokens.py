"""The runner's token reads: a stalled apiserver does not cost the leases their token; a refusal does."""

from __future__ import annotations

from gc_tuner.controller.kube import SecretError
from gc_tuner.controller.runner import PolicyRunner
from gc_tuner.model.policy import SecretKeyRef


class _Kube:
    def __init__(self, *answers: str | SecretError) -> None:
        self.answers = list(answers)

    async def secret(self, namespace: str, name: str, key: str) -> str:
        answer = self.answers.pop(0)
        if isinstance(answer, SecretError):
            raise answer
        return answer


class _Ctx:
    def __init__(self, kube: _Kube) -> None:
        self.kube = kube


async def _reads(*answers: str | SecretError) -> list[tuple[str | None, str | None]]:
    runner, ctx, ref = PolicyRunner("ns", "web"), _Ctx(_Kube(*answers)), SecretKeyRef(name="gctuner-token")
    out = []
    for _ in answers:
        token, failure = await runner._token(ctx, ref)  # type: ignore[arg-type]
        out.append((token, failure.reason if failure else None))
    return out


async def test_an_unanswered_read_keeps_the_last_token_and_says_so() -> None:
    stalled = SecretError("SecretUnreadable", "Secret ns/gctuner-token: ReadTimeoutError")
    assert await _reads("t0k", stalled, "t1k") == [
        ("t0k", None),
        ("t0k", "SecretUnreadable"),  # the leases keep being renewed; Degraded says why
        ("t1k", None),
    ]


async def test_a_refused_secret_is_never_reused() -> None:
    refused = SecretError("SecretNotOptedIn", "not labelled")
    gone = SecretError("SecretNotFound", "not found")
    assert await _reads("t0k", refused, gone) == [
        ("t0k", None),
        (None, "SecretNotOptedIn"),
        (None, "SecretNotFound"),
    ]


def test_no_unanswered_read_before_a_good_one_has_no_token() -> None:
    import asyncio

    stalled = SecretError("SecretUnreadable", "x")
    assert asyncio.run(_reads(stalled)) == [(None, "SecretUnreadable")]
