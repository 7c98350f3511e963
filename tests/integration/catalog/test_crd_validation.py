"""The API server enforces the Backbone schema: a bad digest, an http:// weights URI,
wrong normalisation or tasks are refused with a message naming the field, and
defaults are the contract's."""

import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tailor_contract.backbones import GROUP, PLURAL, VERSION, PretrainedBackbone, from_object

pytestmark = pytest.mark.integration

DIGEST = "sha256:" + "0" * 64
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "backbone.yaml"


def backbone(name: str, **spec) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Backbone",
        "metadata": {"name": name},
        "spec": {
            "architecture": "resnet50",
            "weights": "s3://models/catalog/r50.safetensors",
            "digest": DIGEST,
            "gmacs": 4.1,
            **spec,
        },
    }


def refused(api: client.CustomObjectsApi, obj: dict) -> str:  # the API server's answer
    with pytest.raises(client.ApiException) as error:
        api.create_cluster_custom_object(GROUP, VERSION, PLURAL, obj)
    assert error.value.status == 422, error.value.body
    return str(error.value.body)


def name() -> str:
    return f"v-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ({"digest": "sha256:" + "A" * 64}, "spec.digest", "should match"),
        ({"digest": "md5:0123"}, "spec.digest", "should match"),
        ({"weights": "http://mirror/r50.safetensors"}, "spec.weights", "s3:// or https://"),
        ({"weights": "/data/r50.safetensors"}, "spec.weights", "s3:// or https://"),
        ({"mean": [0.5, 0.5]}, "spec.mean", "3 items"),
        ({"std": [0.5, 0.0, 0.5]}, "spec.std[1]", "greater than 0"),
        ({"inputSize": 8}, "spec.inputSize", "greater than or equal to 16"),
        ({"gmacs": 0}, "spec.gmacs", "greater than 0"),
        ({"tasks": ["segmentation"]}, "spec.tasks[0]", "Unsupported value"),
        ({"interpolation": "lanczos"}, "spec.interpolation", "Unsupported value"),
    ],
)
def test_the_server_refuses_an_invalid_spec_naming_the_field(backbones, spec, field, says):
    body = refused(backbones, backbone(name(), **spec))
    assert field in body
    assert says in body


def test_a_spec_without_weights_or_digest_is_refused(backbones):
    obj = backbone(name())
    del obj["spec"]["digest"], obj["spec"]["weights"]
    body = refused(backbones, obj)
    assert "spec.digest: Required value" in body
    assert "spec.weights: Required value" in body


def test_a_name_longer_than_a_label_is_refused(backbones):
    body = refused(backbones, backbone("b" * 64))
    assert "metadata.name must be at most 63 characters" in body


def test_the_server_applies_the_contracts_defaults(backbones):
    created = backbones.create_cluster_custom_object(GROUP, VERSION, PLURAL, backbone(name()))
    try:
        entry = from_object(created)
        defaults = PretrainedBackbone(
            name=entry.name, architecture="resnet50", weights=entry.weights, digest=DIGEST,
            gmacs=4.1,
        )  # fmt: skip
        assert entry == defaults
        assert created["spec"]["tasks"] == ["classification", "multilabel"]
        assert "namespace" not in created["metadata"]  # cluster-scoped
    finally:
        backbones.delete_cluster_custom_object(GROUP, VERSION, PLURAL, created["metadata"]["name"])


def test_the_example_is_accepted_as_it_is(backbones):
    example = yaml.safe_load(EXAMPLE.read_text())
    accepted = backbones.create_cluster_custom_object(
        GROUP, VERSION, PLURAL, example, dry_run="All"
    )
    assert accepted["spec"] == example["spec"]
