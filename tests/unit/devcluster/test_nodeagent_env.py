"""The node agent resolves a container's environment the way the kubelet does."""

from collections.abc import Sequence
from typing import Any

import pytest

from tailor_devcluster.nodeagent.env import ContainerConfigError, expand, resolve_env


class FakeStore:
    """Secrets and ConfigMaps by (namespace, name): the data a Lookups returns."""

    def __init__(
        self,
        secrets: dict[tuple[str, str], dict[str, str]] | None = None,
        config_maps: dict[tuple[str, str], dict[str, str]] | None = None,
    ) -> None:
        self.secrets = secrets or {}
        self.config_maps = config_maps or {}

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get((namespace, name))

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.config_maps.get((namespace, name))

    def token(
        self, namespace: str, service_account: str, audience: str | None, seconds: int
    ) -> str:
        return f"token-for-{namespace}/{service_account}"


POD = {
    "metadata": {
        "name": "digits-t0-1-abcde",
        "namespace": "team-a",
        "uid": "1234",
        "labels": {"tailor.dev/trial": "t0"},
        "annotations": {"note": "hello"},
    },
    "spec": {"nodeName": "tailor-agent", "serviceAccountName": "default"},
}


def container(*env: dict[str, Any], env_from: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"name": "trainer", "env": list(env), "envFrom": list(env_from)}


def test_values_field_refs_secrets_and_config_maps():
    store = FakeStore(
        secrets={("team-a", "s3"): {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "pw"}},
        config_maps={("team-a", "settings"): {"level": "debug"}},
    )
    env = resolve_env(
        POD,
        container(
            {"name": "HOME", "value": "/tmp"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {
                "name": "TRIAL",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tailor.dev/trial']"}},
            },
            {
                "name": "KEY",
                "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}},
            },
            {
                "name": "LEVEL",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}},
            },
        ),
        store,
    )
    assert env == {
        "HOME": "/tmp",
        "POD": "digits-t0-1-abcde",
        "NS": "team-a",
        "NODE": "tailor-agent",
        "TRIAL": "t0",
        "KEY": "key",
        "LEVEL": "debug",
    }


def test_secrets_are_read_from_the_pods_namespace_only():
    store = FakeStore(secrets={("other", "s3"): {"K": "leak"}})
    ref = {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "K"}}}
    with pytest.raises(ContainerConfigError, match='secret "s3" not found'):
        resolve_env(POD, container(ref), store)


def test_a_missing_key_uses_the_kubelets_words_and_reason():
    store = FakeStore(secrets={("team-a", "s3"): {"OTHER": "x"}})
    ref = {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "K"}}}
    with pytest.raises(
        ContainerConfigError, match="couldn't find key K in Secret team-a/s3"
    ) as info:
        resolve_env(POD, container(ref), store)
    assert info.value.reason == "CreateContainerConfigError"


def test_optional_references_that_are_missing_are_left_out():
    ref = {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "K", "optional": True}}}
    assert resolve_env(POD, container(ref), FakeStore()) == {}


def test_env_from_comes_first_and_env_wins_with_prefixes_applied():
    store = FakeStore(config_maps={("team-a", "base"): {"A": "from-map", "B": "b"}})
    env = resolve_env(
        POD,
        container(
            {"name": "CFG_A", "value": "explicit"},
            env_from=[{"prefix": "CFG_", "configMapRef": {"name": "base"}}],
        ),
        store,
    )
    assert env == {"CFG_A": "explicit", "CFG_B": "b"}


def test_references_to_earlier_variables_are_expanded():
    env = resolve_env(
        POD,
        container(
            {"name": "ROOT", "value": "/data"},
            {"name": "CACHE", "value": "$(ROOT)/cache"},
            {"name": "LATER", "value": "$(UNDEFINED) and $$(ROOT)"},
        ),
        FakeStore(),
    )
    assert env["CACHE"] == "/data/cache"
    assert env["LATER"] == "$(UNDEFINED) and $(ROOT)"


def test_expand_leaves_plain_dollars_alone():
    assert expand("cost $5 $(X)", {"X": "y"}) == "cost $5 y"


def test_an_unsupported_field_path_is_named():
    ref = {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}
    with pytest.raises(ContainerConfigError, match=r"spec\.hostname"):
        resolve_env(POD, container(ref), FakeStore())
