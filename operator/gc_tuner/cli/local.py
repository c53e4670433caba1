"""`gc-tuner local`: the operator's tuning loop on processes given by URL, without a cluster."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml
from click.core import ParameterSource

from gc_tuner.cli.exits import CLIError
from gc_tuner.cli.interrupt import stop_event

if TYPE_CHECKING:
    from gc_tuner.model.policy import GCPolicySpec
    from gc_tuner.tuning.records import PodTarget

__all__ = ["format_cycle", "local"]


def _load_policy(path: str | None, *, mode: str, port: int | None) -> dict[str, Any]:
    from gc_tuner.loop.standalone import default_local_policy

    if path is None:
        if port is None:
            raise CLIError(
                "without --policy, each --target needs an explicit port (e.g. http://127.0.0.1:8080)"
            )
        return default_local_policy(mode=mode, port=port)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CLIError(f"cannot read policy {path}: {e.strerror or e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CLIError(f"policy {path} is not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise CLIError(f"policy {path}: expected a GCPolicy mapping")
    spec = dict(doc.get("spec", doc)) if ("spec" in doc or "kind" in doc) else dict(doc)
    if "kind" in doc and doc.get("kind") != "GCPolicy":
        raise CLIError(f"policy {path}: kind: expected GCPolicy, got {doc.get('kind')!r}")
    return spec


def format_cycle(outcome: Any, status: dict[str, Any]) -> list[str]:
    """One summary line per cycle, then one line per failing pod."""
    ts = time.strftime("%H:%M:%S", time.localtime(outcome.time))
    pods = status.get("pods", {})
    parts = [f"{ts} pods {pods.get('sampled', 0)}/{pods.get('matched', 0)} sampled"]
    fit = outcome.fit
    if fit is not None and fit.complete:
        parts.append(f"qps {fit.qps:.1f}  heap {fit.heap_slope_mb_per_s:+.3f} MB/s (r² {fit.r2 or 0:.2f})")
    elif fit is not None:
        parts.append(f"fit: {fit.insufficient}")
    if outcome.recommendation_gogc is not None:
        rec = f"recommend GOGC {outcome.recommendation_gogc}"
        if outcome.gomemlimit:
            rec += f" GOMEMLIMIT {outcome.gomemlimit}"
        parts.append(rec)
    if outcome.decision is not None:
        parts.append(f"{outcome.decision.action} {outcome.decision.gogc} ({outcome.decision.code})")
    if outcome.applied is not None and outcome.enforcing:
        parts.append(f"applied GOGC {outcome.applied.gogc} on {outcome.applied.pods} pod(s)")
    if outcome.leak.true:
        parts.append("LEAK SUSPECTED")
    lines = [" | ".join(parts)]
    lines += [f"    {f.pod} {f.source}: {f.reason}: {f.message}" for f in outcome.failures]
    return lines


@click.command("local")
@click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    metavar="URL",
    help="Base URL of a Go process (repeatable), e.g. http://127.0.0.1:8080.",
)
@click.option(
    "--mode",
    type=click.Choice(["dry-run", "enforce"]),
    default="dry-run",
    show_default=True,
    help="dry-run only recommends; enforce writes through the agent endpoint.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A GCPolicy (or just its spec) in YAML. Ports in it are replaced by each URL's port.",
)
@click.option(
    "--interval",
    type=click.IntRange(1, 3600),
    default=None,
    help="Seconds between cycles (overrides sampling.intervalSeconds).",
)
@click.option(
    "--window",
    type=click.IntRange(3, 86400),
    default=None,
    help="Seconds of history per fit (overrides sampling.windowSeconds).",
)
@click.option(
    "--token", default=None, envvar="GC_TUNER_TOKEN", help="The agents' bearer token [env GC_TUNER_TOKEN]."
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Read the bearer token from this file.",
)
@click.option(
    "--memory-limit",
    default=None,
    metavar="QUANTITY",
    help="The processes' memory limit (e.g. 512Mi), for memoryLimit.mode FromContainerLimit.",
)
@click.option(
    "--guard/--no-guard",
    default=None,
    help="Enforce: judge every change on a canary and roll it back on a regression (spec.guard) "
    "[the policy's; on by default].",
)
@click.option(
    "--canary-pods",
    type=click.IntRange(0, 10000),
    default=None,
    help="Targets that get a change first (0: all, judged against their own past) [1].",
)
@click.option(
    "--evaluation",
    "evaluation_s",
    type=click.IntRange(10, 86400),
    default=None,
    metavar="SECONDS",
    help="How long a change is judged before it goes to every target (at least 5 intervals) [300].",
)
@click.option("--cycles", type=click.IntRange(1), default=None, help="Stop after this many cycles.")
@click.option(
    "--keep/--release",
    default=False,
    help="On exit, keep the written values until their lease lapses, or release them now [release].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a line per cycle; json: the GCPolicy status document per cycle, one per line.",
)
def local(
    targets: tuple[str, ...],
    mode: str,
    policy_path: str | None,
    interval: int | None,
    window: int | None,
    token: str | None,
    token_file: str | None,
    memory_limit: str | None,
    guard: bool | None,
    canary_pods: int | None,
    evaluation_s: int | None,
    cycles: int | None,
    keep: bool,
    fmt: str,
) -> None:
    """Run the tuning loop on processes by URL: the same cycle the operator runs, without a cluster.

    \b
    Examples:
      gc-tuner local --target http://127.0.0.1:8080
      gc-tuner local --target http://127.0.0.2:8080 --target http://127.0.0.3:8080 --mode enforce
      gc-tuner local --target http://127.0.0.1:8080 --policy gcpolicy.yaml --cycles 10 --format json

    Without --policy the processes are read through the gc-tuner agent (/debug/gctuner) and
    /metrics (QPS from http_requests_total), and enforce writes through the agent with a lease.
    Enforce gives each change to one target first and judges it against the others (GC CPU,
    pauses, memory) before it goes to every target; a regression is rolled back (--no-guard: off).
    Ctrl-C stops; in enforce mode the leases are released so the processes return to their
    startup values at once.
    """
    from gc_tuner.loop.standalone import TargetError

    pods = _parse_targets(targets, memory_limit)
    policy_mode = "Enforce" if mode == "enforce" else "DryRun"
    spec_doc = _load_policy(policy_path, mode=policy_mode, port=pods[0].port)
    if policy_path is not None:
        spec_doc["mode"] = policy_mode
    spec_doc["sampling"] = _sampling_overrides(dict(spec_doc.get("sampling") or {}), interval, window)
    _guard_overrides(spec_doc, guard, canary_pods, evaluation_s)
    spec = _parse_spec(spec_doc)
    token = _read_token(token, token_file)
    try:
        asyncio.run(_run(spec, pods, token, cycles, fmt, keep))
    except TargetError as e:
        raise CLIError(str(e)) from None


def _read_token(token: str | None, token_file: str | None) -> str | None:
    """The bearer token from --token-file, --token or GC_TUNER_TOKEN, without surrounding whitespace.

    `$(cat token)`, `kubectl get secret ... | base64 -d` and env files keep a trailing newline, which
    httpx refuses in a header, so every request of every cycle would fail; stripping is what a user
    means. What is left must be printable ASCII: a control character (an inner newline, a NUL) or a
    non-ASCII one cannot be sent in a header either, so it is refused here, naming where it came from.
    """
    if token_file is not None:
        source = f"--token-file {token_file}"
        try:
            token = Path(token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise CLIError(f"{source}: cannot read the token: {reason}") from None
    else:
        ctx = click.get_current_context()
        from_env = ctx.get_parameter_source("token") is ParameterSource.ENVIRONMENT
        source = "GC_TUNER_TOKEN" if from_env else "--token"
    if token is None:
        return None
    token = token.strip()
    for c in token:
        if not " " <= c <= "~":
            kind = "a control character" if c.isascii() else "a non-ASCII character"
            raise CLIError(
                f"{source}: the token contains {kind} ({c!r}), which an HTTP header cannot carry; "
                "pass the token alone, on one line"
            )
    return token or None  # empty: no token, as an empty token file always meant


def _parse_targets(targets: tuple[str, ...], memory_limit: str | None) -> list[PodTarget]:
    from gc_tuner.logic.memlimit import parse_quantity
    from gc_tuner.loop.standalone import TargetError, parse_target

    if memory_limit is not None:
        try:
            parse_quantity(memory_limit)
        except ValueError as e:
            raise CLIError(f"--memory-limit: {e}") from None
    try:
        pods = [parse_target(t, memory_limit=memory_limit) for t in targets]
    except TargetError as e:
        raise CLIError(str(e)) from None
    names = [p.name for p in pods]
    if len(set(names)) != len(names):
        raise CLIError("the same --target is given twice")
    return pods


def _sampling_overrides(sampling: dict[str, Any], interval: int | None, window: int | None) -> dict[str, Any]:
    """The policy's sampling with --interval and --window applied."""
    if interval is not None:
        sampling["intervalSeconds"] = interval
        if window is None and "windowSeconds" not in sampling:
            sampling["windowSeconds"] = max(60, 3 * interval)
    if window is not None:
        sampling["windowSeconds"] = window
    return sampling


def _guard_overrides(
    spec_doc: dict[str, Any], guard: bool | None, canary_pods: int | None, evaluation_s: int | None
) -> None:
    """The policy's guard and canary with --guard/--no-guard, --canary-pods and --evaluation applied."""
    if guard is not None:
        spec_doc["guard"] = {**(spec_doc.get("guard") or {}), "enabled": guard}
    canary = dict((spec_doc.get("rollout") or {}).get("canary") or {})
    if canary_pods is not None:
        canary["pods"] = canary_pods
    if evaluation_s is not None:
        canary["evaluationSeconds"] = evaluation_s
    if canary:
        spec_doc["rollout"] = {**(spec_doc.get("rollout") or {}), "canary": canary}


def _parse_spec(spec_doc: dict[str, Any]) -> GCPolicySpec:
    from gc_tuner.model.policy import PolicyError, parse_policy

    try:
        return parse_policy(spec_doc)
    except PolicyError as e:
        raise CLIError(str(e)) from None


async def _run(
    spec: Any, pods: list[Any], token: str | None, cycles: int | None, fmt: str, keep: bool
) -> None:
    import httpx

    from gc_tuner.loop.standalone import LocalLoop

    stop = stop_event(signal.SIGINT, signal.SIGTERM)

    def show(outcome: Any, status: dict[str, Any]) -> None:
        if fmt == "json":
            print(json.dumps({"time": outcome.time, "status": status}, sort_keys=True), flush=True)
        else:
            for line in format_cycle(outcome, status):
                print(line, flush=True)

    # Every target is its own host, so an idle keep-alive connection is almost never reused; kept,
    # they make httpcore's pool scan (a socket check each) on every request: about half the CPU of a
    # cycle over thousands of targets (bench/fleet).
    limits = httpx.Limits(
        max_connections=max(10, 2 * spec.sampling.max_concurrency), max_keepalive_connections=0
    )
    async with httpx.AsyncClient(limits=limits, trust_env=False) as http:
        runner = LocalLoop(spec, pods, http, token=token)
        await runner.run(show, stop=stop, max_cycles=cycles)
        problems = [] if keep else await runner.release()
        for p in problems:
            print(f"release failed: {p}", file=sys.stderr)
