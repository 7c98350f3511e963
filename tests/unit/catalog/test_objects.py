"""Catalog entries as Backbone objects and back; the CRD matches the contract; the
chart's copy of the CRD is crds/'s, byte for byte."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tailor_catalog.objects import backbone_object, entry_of
from tailor_contract.backbones import SPEC_FIELDS, PretrainedBackbone, from_object, to_object
from tests.unit.catalog.references import LITE0_DIGEST

ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = ROOT / "crds" / "tailor.dev_backbones.yaml"
CHART_COPY = ROOT / "charts" / "tailor" / "crds" / "tailor.dev_backbones.yaml"
EXAMPLE = ROOT / "examples" / "backbone.yaml"

LITE0 = PretrainedBackbone(
    name="efficientnet-lite0-imagenet",
    architecture="tf_efficientnet_lite0",
    weights="s3://models/catalog/efficientnet-lite0-imagenet.safetensors",
    digest="sha256:" + "ab" * 32,
    pretrained_on="ImageNet-1k",
    license="Apache-2.0",
    input_size=224,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    interpolation="bicubic",
    gmacs=0.3852,
    parameters_millions=4.652,
    tasks=("classification", "multilabel"),
)


def spec_schema() -> dict[str, Any]:
    (version,) = yaml.safe_load(CRD_PATH.read_text())["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def test_an_entry_survives_the_round_trip():
    obj = backbone_object(LITE0)
    assert obj["apiVersion"] == "tailor.dev/v1alpha1"
    assert obj["kind"] == "Backbone"
    assert obj["metadata"] == {
        "name": "efficientnet-lite0-imagenet",
        "labels": {"app.kubernetes.io/managed-by": "tailor-models"},
    }
    assert obj["spec"]["pretrainedOn"] == "ImageNet-1k"
    assert obj["spec"]["mean"] == [0.5, 0.5, 0.5]
    assert yaml.safe_load(yaml.safe_dump(obj)) == obj  # plain data
    assert entry_of(obj) == LITE0
    assert from_object(to_object(LITE0)) == LITE0


def test_an_object_from_the_server_reads_with_its_status_and_unknown_fields():
    obj = to_object(LITE0)
    obj["metadata"].update(uid="1", resourceVersion="7", generation=2)
    obj["spec"]["someFutureField"] = "ignored"
    obj["status"] = {"verified": True, "verifiedBy": "team-a/flowers"}
    assert from_object(obj) == LITE0


def test_defaults_of_a_minimal_object_are_the_contracts():
    entry = from_object(
        {
            "metadata": {"name": "m"},
            "spec": {"architecture": "resnet50", "weights": "https://x/w.safetensors",
                     "digest": "sha256:" + "0" * 64, "gmacs": 4.1},
        }
    )  # fmt: skip
    assert entry.input_size == 224
    assert entry.tasks == ("classification", "multilabel")


def test_an_invalid_object_is_refused():
    obj = to_object(LITE0)
    obj["spec"]["digest"] = "md5:abc"
    with pytest.raises(ValidationError, match="digest"):
        from_object(obj)


def test_the_crd_has_exactly_the_contracts_fields_with_its_defaults():
    schema = spec_schema()
    assert set(schema["properties"]) == set(SPEC_FIELDS.values())
    assert set(SPEC_FIELDS) == set(PretrainedBackbone.model_fields) - {"name"}
    fields = PretrainedBackbone.model_fields
    for field, camel in SPEC_FIELDS.items():
        declared = schema["properties"][camel]
        if fields[field].is_required():
            assert camel in schema["required"], camel
            assert "default" not in declared, camel
        else:
            default = fields[field].default
            expected = list(default) if isinstance(default, tuple) else default
            assert declared["default"] == expected, camel
    assert spec_schema()["properties"]["digest"]["pattern"] == (
        PretrainedBackbone.model_fields["digest"].metadata[0].pattern
    )


def test_the_crd_is_cluster_scoped_with_the_printer_columns():
    crd = yaml.safe_load(CRD_PATH.read_text())
    assert crd["metadata"]["name"] == "backbones.tailor.dev"
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["bb"]
    (version,) = crd["spec"]["versions"]
    shown = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert shown == ["Architecture", "Pretrained-On", "Input", "GMACs", "Verified", "Age"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) == {"verified", "verifiedAt", "verifiedBy", "message", "observedGeneration"}


def test_the_charts_copy_of_the_crd_is_identical():
    assert CHART_COPY.read_bytes() == CRD_PATH.read_bytes(), f"copy {CRD_PATH} to {CHART_COPY}"


def test_the_example_is_what_the_import_creates():
    example = yaml.safe_load(EXAMPLE.read_text())
    entry = from_object(example)
    assert backbone_object(entry) == example
    assert entry.digest == LITE0_DIGEST
