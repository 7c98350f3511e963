"""crds/ and the operator's models say the same thing, field by field.

The CRD is the source of truth; these tests fail when a field, a type, an enum,
a required marker or a default differs between it and core/spec.py, core/status.py.
"""

from typing import Any

import pytest
from pydantic import BaseModel

from tailor_operator.core.models import GROUP, KIND, PLURAL, VERSION
from tailor_operator.core.spec import TrainingJobSpec
from tailor_operator.core.status import TrainingJobStatus
from tests.unit.operator.crd import apply_defaults, load_crd, version_schema

SCALARS = {"string", "integer", "number", "boolean"}


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(defs[schema["$ref"].split("/")[-1]], defs)
    options = schema.get("anyOf")
    if options:
        real = [o for o in options if o.get("type") != "null"]
        if len(real) == 1:
            return _resolve(real[0], defs)
    return schema


def compare(
    model: dict[str, Any], crd: dict[str, Any], defs: dict[str, Any], path: str
) -> list[str]:
    """Every difference between a pydantic JSON schema and a CRD schema, by path."""
    model = _resolve(model, defs)
    problems: list[str] = []
    if "anyOf" in model:  # a union of scalars: free-form in the CRD
        if not crd.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(f"{path}: the model allows several types, the CRD does not")
        kinds = {o.get("type") for o in model["anyOf"]}
        if not kinds <= SCALARS:
            problems.append(f"{path}: the model's union has non-scalar members {kinds}")
        return problems
    kind = model.get("type")
    if kind != crd.get("type"):
        return [f"{path}: model type {kind!r}, CRD type {crd.get('type')!r}"]
    if set(model.get("enum", [])) != set(crd.get("enum", [])):
        problems.append(
            f"{path}: enum {sorted(model.get('enum', []))} vs {sorted(crd.get('enum', []))}"
        )
    if model.get("format") == "date-time" and crd.get("format") != "date-time":
        problems.append(f"{path}: a timestamp in the model, not format date-time in the CRD")
    if kind == "array":
        # A fixed-length tuple of one type (an RGB mean) is an array of that type.
        prefix = model.get("prefixItems", [])
        items = model.get("items") or (prefix[0] if prefix else {})
        if any(p != items for p in prefix):
            problems.append(f"{path}: a tuple of mixed types")
        problems += compare(items, crd["items"], defs, f"{path}[]")
    if kind == "object" and "properties" in model:
        ours, theirs = set(model["properties"]), set(crd.get("properties", {}))
        if ours != theirs:
            only_model, only_crd = sorted(ours - theirs), sorted(theirs - ours)
            problems.append(f"{path}: only in the model {only_model}, only in the CRD {only_crd}")
        for name in ours & theirs:
            problems += compare(
                model["properties"][name], crd["properties"][name], defs, f"{path}.{name}"
            )
        required_model, required_crd = model.get("required", []), crd.get("required", [])
        if set(required_model) != set(required_crd):
            problems.append(f"{path}: required {sorted(required_model)} vs {sorted(required_crd)}")
    elif kind == "object":
        problems += compare(
            model.get("additionalProperties", {}),
            crd.get("additionalProperties", {}),
            defs,
            f"{path}{{}}",
        )
    return problems


def schema_of(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True)
    return schema, schema.get("$defs", {})


@pytest.mark.parametrize(
    ("part", "model"), [("spec", TrainingJobSpec), ("status", TrainingJobStatus)]
)
def test_models_and_crd_schema_agree(part: str, model: type[BaseModel]) -> None:
    crd = version_schema(load_crd())["properties"][part]
    schema, defs = schema_of(model)
    if part == "status":  # the operator writes every status field; none is required of users
        crd = dict(crd, required=schema.get("required", []))
    assert compare(schema, crd, defs, part) == []


def test_the_comparison_finds_a_drift() -> None:
    crd = version_schema(load_crd())["properties"]["spec"]
    drifted = dict(
        crd, properties=dict(crd["properties"], task={"type": "string", "enum": ["classification"]})
    )
    schema, defs = schema_of(TrainingJobSpec)
    assert compare(schema, drifted, defs, "spec") == [
        "spec.task: enum ['classification', 'detection', 'multilabel'] vs ['classification']"
    ]


MINIMAL = {
    "task": "multilabel",
    "dataset": {"train": "s3://d/train.json"},
    "budget": {"gpuHours": "1"},
    "output": "s3://m/out/",
    "search": {"trials": [{"model": "resnet18"}]},
}


def test_server_defaults_equal_model_defaults() -> None:
    crd = version_schema(load_crd())["properties"]["spec"]
    defaulted = apply_defaults(crd, MINIMAL)
    from_server = TrainingJobSpec.model_validate(defaulted)
    from_model = TrainingJobSpec.model_validate(MINIMAL)
    assert from_server == from_model
    # Every default the model assumes is written down in the CRD, so clients see it too.
    assert defaulted == from_model.model_dump(by_alias=True, exclude_none=True)


def test_identity_printer_columns_and_status_subresource() -> None:
    crd = load_crd()
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (KIND, PLURAL, ["tj"])
    assert "tailor" in names["categories"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == VERSION
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Task", "State", "GPU-Hours", "Best", "Reason", "Age"]
    schema = version["schema"]["openAPIV3Schema"]
    for path in columns.values():
        node = schema
        for part in path.strip(".").split("."):
            if part == "metadata":
                break
            node = node["properties"][part]


def test_every_status_field_the_printer_columns_show_is_written() -> None:
    status = TrainingJobStatus.model_validate(
        {
            "budget": {"summary": "0.10/1.00"},
            "bestTrial": {"name": "t0", "model": "m", "metric": "top1", "summary": "top1=0.9"},
        }
    )
    dumped = status.to_json()
    assert dumped["phase"] == "Pending"
    assert dumped["budget"]["summary"] == "0.10/1.00"  # type: ignore[index]
    assert dumped["bestTrial"]["summary"] == "top1=0.9"  # type: ignore[index]
