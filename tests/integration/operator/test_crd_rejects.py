"""The API server itself refuses invalid TrainingJobs, naming the field in its message."""

import copy
from typing import Any

import pytest
from kubernetes import client

from tests.integration.operator.conftest import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.integration

VALID: dict[str, Any] = {
    "task": "classification",
    "dataset": {
        "train": "s3://datasets/insects/train.json",
        "credentialsSecret": "s3-credentials",
        "endpoint": "http://minio.storage:9000",
    },
    "budget": {"gpuHours": "2.5"},
    "resources": {"maxParallelTrials": 2, "maxGpusPerTrial": 1},
    "output": "s3://models/team-a/insects/",
}


def manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def with_(path: str, value: Any) -> dict[str, Any]:
    """VALID with one field set (value None removes it)."""
    spec = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return spec


INVALID = [
    ("unknown-task", with_("task", "segmentation"), "spec.task"),
    ("no-task", with_("task", None), "spec.task"),
    ("no-dataset", with_("dataset", None), "spec.dataset"),
    ("train-http", with_("dataset.train", "http://datasets/train.json"), "spec.dataset.train"),
    ("train-bucket-only", with_("dataset.train", "s3://datasets"), "spec.dataset.train"),
    (
        "evaluation-gcs",
        with_("dataset.evaluation", "gs://datasets/eval.json"),
        "spec.dataset.evaluation",
    ),
    ("endpoint-no-scheme", with_("dataset.endpoint", "minio:9000"), "spec.dataset.endpoint"),
    (
        "secret-bad-name",
        with_("dataset.credentialsSecret", "S3_Creds"),
        "spec.dataset.credentialsSecret",
    ),
    ("no-budget", with_("budget", None), "spec.budget"),
    ("budget-zero", with_("budget.gpuHours", "0"), "spec.budget.gpuHours"),
    ("budget-negative", with_("budget.gpuHours", "-1"), "spec.budget.gpuHours"),
    ("budget-words", with_("budget.gpuHours", "lots"), "spec.budget.gpuHours"),
    ("budget-huge", with_("budget.gpuHours", "1000000"), "spec.budget.gpuHours"),
    ("budget-number", with_("budget.gpuHours", 2.5), "spec.budget.gpuHours"),
    ("parallel-zero", with_("resources.maxParallelTrials", 0), "spec.resources.maxParallelTrials"),
    (
        "parallel-huge",
        with_("resources.maxParallelTrials", 1000),
        "spec.resources.maxParallelTrials",
    ),
    ("gpus-nine", with_("resources.maxGpusPerTrial", 9), "spec.resources.maxGpusPerTrial"),
    ("gpu-types-twice", with_("resources.gpuTypes", ["T4", "T4"]), "spec.resources.gpuTypes"),
    (
        "toleration-op",
        with_("resources.tolerations", [{"key": "k", "operator": "Maybe"}]),
        "spec.resources.tolerations[0].operator",
    ),
    ("no-output", with_("output", None), "spec.output"),
    ("output-path", with_("output", "/models/insects"), "spec.output"),
    (
        "models-and-trials",
        with_("search", {"models": ["resnet18"], "trials": [{"model": "vit_tiny"}]}),
        "spec.search",
    ),
    (
        "trial-too-many-gpus",
        with_("search", {"trials": [{"model": "resnet18", "gpus": 4}]}),
        "spec.search.trials",
    ),
    ("trial-no-model", with_("search", {"trials": [{"gpus": 1}]}), "spec.search.trials[0].model"),
    (
        "pretrained-http",
        with_("search", {"trials": [{"model": "m", "pretrained": "http://w/x.safetensors"}]}),
        "spec.search.trials[0].pretrained",
    ),
    ("goal-sideways", with_("search", {"goal": "Sideways"}), "spec.search.goal"),
]


@pytest.mark.parametrize(("name", "spec", "field"), INVALID, ids=[i[0] for i in INVALID])
def test_an_invalid_trainingjob_is_refused_naming_the_field(
    trainingjobs, namespace, name, spec, field
):
    with pytest.raises(client.ApiException) as refused:
        trainingjobs.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest(name, spec)
        )
    assert refused.value.status == 422, refused.value.body
    assert field in refused.value.body, refused.value.body


def test_a_long_name_is_refused(trainingjobs, namespace):
    with pytest.raises(client.ApiException) as refused:
        trainingjobs.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest("x" * 64, VALID)
        )
    assert refused.value.status == 422
    assert "metadata.name must be at most 63 characters" in refused.value.body


def test_an_unknown_field_is_refused_under_strict_validation(trainingjobs, namespace):
    spec = with_("dataset.trian", "s3://typo/x.json")
    with pytest.raises(client.ApiException) as refused:
        trainingjobs.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest("typo", spec), field_validation="Strict"
        )
    assert "spec.dataset.trian" in refused.value.body


def test_the_valid_manifest_is_accepted_and_defaulted(trainingjobs, namespace):
    created = trainingjobs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest("ok", VALID)
    )
    spec = created["spec"]
    assert spec["resources"]["gpuTypes"] == []
    assert spec["search"] == {"models": [], "trials": []}  # no goal: the metric's own
    assert spec["podMetadata"] == {"annotations": {}, "labels": {}}


def started(trainingjobs, namespace: str, name: str, charged: float = 0.0) -> None:
    """Marks a job as training (what the operator writes), through the status subresource."""
    trainingjobs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest(name, VALID)
    )
    trainingjobs.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        {
            "status": {
                "trainingStartTime": "2025-03-01T12:00:00Z",
                "budget": {"limitGpuSeconds": 9000.0, "chargedGpuSeconds": charged},
            }
        },
    )


@pytest.mark.parametrize(
    ("field", "patch"),
    [
        ("spec.task", {"task": "multilabel"}),
        ("spec.dataset", {"dataset": {"train": "s3://datasets/other/train.json"}}),
        ("spec.output", {"output": "s3://models/elsewhere/"}),
        ("spec.search", {"search": {"models": ["vit_tiny"]}}),
    ],
)
def test_fields_are_frozen_once_training_started(trainingjobs, namespace, field, patch):
    started(trainingjobs, namespace, "frozen")
    with pytest.raises(client.ApiException) as refused:
        trainingjobs.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "frozen", {"spec": patch}
        )
    assert refused.value.status == 422
    assert f"{field} cannot change once training started" in refused.value.body


def test_fields_may_change_before_training_starts(trainingjobs, namespace):
    trainingjobs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest("early", VALID)
    )
    changed = trainingjobs.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "early", {"spec": {"task": "multilabel"}}
    )
    assert changed["spec"]["task"] == "multilabel"


def test_the_budget_may_grow_but_not_drop_below_what_is_charged(trainingjobs, namespace):
    started(trainingjobs, namespace, "budget", charged=5400.0)  # 1.5 GPU-hours
    grown = trainingjobs.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "budget", {"spec": {"budget": {"gpuHours": "4"}}}
    )
    assert grown["spec"]["budget"]["gpuHours"] == "4"
    lowered = trainingjobs.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "budget", {"spec": {"budget": {"gpuHours": "1.5"}}}
    )
    assert lowered["spec"]["budget"]["gpuHours"] == "1.5"
    with pytest.raises(client.ApiException) as refused:
        trainingjobs.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "budget", {"spec": {"budget": {"gpuHours": "1"}}}
        )
    assert refused.value.status == 422
    assert "spec.budget.gpuHours may grow but never drop below" in refused.value.body
