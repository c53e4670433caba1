"""Who owns an env entry's value, from managedFields as the apiserver writes them: after a forced
apply by another manager, after an ordinary update, and for an entry removed outright."""

from __future__ import annotations

from typing import Any

from gc_tuner.actuation.managed_fields import env_value_owners, latest_env_writer


def entry(manager: str, operation: str, time: str, env: dict[str, Any], **extra: Any) -> dict[str, Any]:
    fields = {
        "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:env": env}}}}}
    }
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        **extra,
    }


def var(name: str, *, value: bool = True) -> dict[str, Any]:
    return {f'k:{{"name":"{name}"}}': {".": {}, "f:name": {}, **({"f:value": {}} if value else {})}}


def obj(*managed: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "managedFields": list(managed)}}


GITOPS_TOOK_GOGC = obj(
    entry("kubectl-create", "Update", "2026-01-01T00:00:00Z", {**var("PORT"), **var("GOGC", value=False)}),
    entry("gc-tuner", "Apply", "2026-01-01T00:01:00Z", {**var("GOGC", value=False), **var("GOMEMLIMIT")}),
    entry("argocd-controller", "Apply", "2026-01-01T00:02:00Z", {**var("PORT"), **var("GOGC")}),
    {
        "manager": "kube-controller-manager",
        "operation": "Update",
        "subresource": "status",
        "time": "2026-01-01T00:03:00Z",
    },
)


def test_the_value_belongs_to_whoever_set_it_last() -> None:
    assert env_value_owners(GITOPS_TOOK_GOGC, "app", "GOGC") == ("argocd-controller",)
    assert env_value_owners(GITOPS_TOOK_GOGC, "app", "GOMEMLIMIT") == ("gc-tuner",)
    assert env_value_owners(GITOPS_TOOK_GOGC, "app", "PORT") == ("argocd-controller", "kubectl-create")
    assert env_value_owners(GITOPS_TOOK_GOGC, "sidecar", "GOGC") == ()


def test_a_shared_value_has_every_owner() -> None:
    both = obj(
        entry("gc-tuner", "Apply", "2026-01-01T00:01:00Z", var("GOGC")),
        entry("flux", "Apply", "2026-01-01T00:02:00Z", var("GOGC")),
    )
    assert env_value_owners(both, "app", "GOGC") == ("flux", "gc-tuner")


def test_a_removed_entry_is_named_by_the_latest_writer_of_the_env_not_a_status_writer() -> None:
    removed = obj(
        entry("kubectl-edit", "Update", "2026-01-01T00:05:00Z", var("PORT")),
        entry("gc-tuner", "Apply", "2026-01-01T00:06:00Z", {}),
        entry("kubectl-create", "Update", "2026-01-01T00:00:00Z", var("PORT")),
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "subresource": "status",
            "time": "2026-01-01T00:09:00Z",
        },
    )
    assert env_value_owners(removed, "app", "GOGC") == ()
    assert latest_env_writer(removed, "app", other_than="gc-tuner") == "kubectl-edit"


def test_the_key_of_a_list_item_is_read_as_json_whatever_its_spacing() -> None:
    spaced = obj(entry("kubectl", "Update", "t", {'k:{"name": "GOGC"}': {"f:value": {}}}))
    assert env_value_owners(spaced, "app", "GOGC") == ("kubectl",)


def test_no_managed_fields_no_owner() -> None:
    assert env_value_owners({"metadata": {}}, "app", "GOGC") == ()
    assert latest_env_writer({"metadata": {}}, "app", other_than="gc-tuner") is None
