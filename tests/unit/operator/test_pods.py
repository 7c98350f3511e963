"""Pod and ConfigMap manifests, checked field by field."""

import json
from typing import Any

import pytest

from tailor_contract import GivenTrial, TrialConfig
from tailor_contract.cost import REFERENCE, CostModel
from tailor_contract.nodes import CPU_REQUEST_ENV
from tailor_operator.core.pods import config_map, given_trials, pod, trial_config
from tailor_operator.core.status import AttemptRecord, TrialStatus
from tests.unit.operator.factories import POLICY, TABLE, UID, at, job

RECORD = AttemptRecord(
    attempt=2, pod="insects-t0-2-abcde", created_at=at(0), gpus=2, allowance_gpu_seconds=1800.0
)
TRIAL = TrialStatus(name="t0", model="resnet18", gpus=2, hyperparameters={"lr": 0.01})


def trial_pod(**spec_overrides: Any) -> dict[str, Any]:
    return pod(job(**spec_overrides), RECORD, "t0", POLICY)


def test_the_pod_meets_the_restricted_pod_security_profile() -> None:
    manifest = trial_pod()
    spec = manifest["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True  # writes go to the /tmp emptyDir
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # restricted forbids host namespaces, host paths and privileged containers outright
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
    assert all("hostPath" not in v for v in spec["volumes"])
    assert "privileged" not in context


def test_the_pod_runs_once_and_reports_through_its_termination_message() -> None:
    manifest = trial_pod()
    (container,) = manifest["spec"]["containers"]
    assert manifest["spec"]["restartPolicy"] == "Never"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["command"] == ["tailor-train", "run", "--config", "/etc/tailor/trial.json"]
    assert container["image"] == "registry.example/tailor-trainer:1.0"


def test_gpus_are_requested_and_limited() -> None:
    resources = trial_pod()["spec"]["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == "2"
    assert resources["limits"]["nvidia.com/gpu"] == "2"
    assert resources["requests"]["cpu"] == "8000m"
    assert resources["limits"]["memory"] == resources["requests"]["memory"] == "65536Mi"


def test_the_trainer_is_told_the_cpus_its_pod_requested() -> None:
    """Without a CPU limit a container sees every core of its node: the trainer reads
    the request through the downward API and sizes its threads by it."""
    env = {e["name"]: e for e in trial_pod()["spec"]["containers"][0]["env"]}
    field = env[CPU_REQUEST_ENV]["valueFrom"]["resourceFieldRef"]
    assert field == {"resource": "requests.cpu", "divisor": "1m"}


def test_credentials_come_only_from_the_named_secret() -> None:
    env = trial_pod()["spec"]["containers"][0]["env"]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in env
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secrets == {
        "AWS_ACCESS_KEY_ID": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"},
        "AWS_SECRET_ACCESS_KEY": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"},
    }
    assert not any("SECRET" in e["name"] and "value" in e for e in env)


def test_no_credentials_without_a_secret_and_an_endpoint_when_given() -> None:
    env = trial_pod(dataset={"train": "s3://d/t.json", "endpoint": "http://minio:9000"})["spec"][
        "containers"
    ][0]["env"]
    names = {e["name"]: e.get("value") for e in env}
    assert "AWS_ACCESS_KEY_ID" not in names
    assert names["AWS_ENDPOINT_URL"] == "http://minio:9000"


def test_placement_follows_the_spec() -> None:
    spec = trial_pod(
        resources={
            "gpuTypes": ["NVIDIA-A100-SXM4-80GB"],
            "nodeSelector": {"pool": "train"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "batch-low",
        }
    )["spec"]
    assert spec["nodeSelector"] == {"pool": "train"}
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["priorityClassName"] == "batch-low"
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"] == [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB"]}
    ]


def test_no_gpu_affinity_without_gpu_types_nor_for_validation() -> None:
    assert "affinity" not in trial_pod()["spec"]
    validation = AttemptRecord(attempt=1, pod="v", created_at=at(0), gpus=0)
    manifest = pod(job(resources={"gpuTypes": ["X"]}), validation, "validate", POLICY)
    assert "affinity" not in manifest["spec"]
    (container,) = manifest["spec"]["containers"]
    assert container["command"][:2] == ["tailor-train", "validate"]
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    assert manifest["metadata"]["labels"]["tailor.dev/role"] == "validate"


def test_owner_labels_finalizer_and_pod_metadata() -> None:
    metadata = trial_pod(
        podMetadata={
            "labels": {"team": "a", "tailor.dev/job": "spoof"},
            "annotations": {"kwok.tailor.dev/exit-code": "0"},
        }
    )["metadata"]
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": "tailor.dev/v1alpha1",
            "kind": "TrainingJob",
            "name": "insects",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert metadata["labels"]["tailor.dev/job"] == "insects"  # ours win over the user's
    assert metadata["labels"]["team"] == "a"
    assert metadata["labels"]["tailor.dev/attempt"] == "2"
    assert metadata["annotations"] == {"kwok.tailor.dev/exit-code": "0"}
    assert metadata["finalizers"] == ["tailor.dev/ledger"]


def test_the_config_map_carries_a_trial_config_the_trainer_accepts() -> None:
    tj = job(budget={"gpuHours": "1"}, resources={"gpuTypes": ["NVIDIA-A100-SXM4-80GB"]})
    config = trial_config(tj, RECORD, TABLE, TRIAL, "resnet50", REFERENCE)
    manifest = config_map(tj, RECORD, "t0", config)
    assert manifest["immutable"] is True
    parsed = TrialConfig.model_validate(json.loads(manifest["data"]["trial.json"]))
    assert parsed.allowance_gpu_seconds == 1800
    assert parsed.calibration_factor == 1.0  # only A100 allowed
    assert parsed.calibration_factors["NVIDIA-H100-80GB-HBM3"] == 2.0
    assert (parsed.trial, parsed.attempt, parsed.gpus, parsed.export) == ("t0", 2, 2, True)
    assert parsed.output == "s3://models/insects/trials/t0/"
    assert parsed.job == "team-a/insects"
    # The job's identity and its output prefix: the trial checks the claim, and resumes
    # only a checkpoint its own job's trial wrote.
    assert (parsed.job_uid, parsed.job_output) == (UID, "s3://models/insects/")
    assert parsed.hyperparameters == {"lr": 0.01}


def test_an_unconstrained_trial_is_told_the_most_expensive_factor() -> None:
    config = trial_config(job(), RECORD, TABLE, TRIAL, "resnet50", REFERENCE)
    assert config.calibration_factor == 2.0


def test_validation_config() -> None:
    record = AttemptRecord(attempt=1, pod="v", created_at=at(0), gpus=0, allowance_gpu_seconds=3600)
    prices = CostModel(fixed_seconds=6.0, reference_images_per_second=8.0)
    config = trial_config(job(), record, TABLE, None, "convnext_tiny", prices)
    assert (config.trial, config.model, config.gpus, config.export) == (
        "validate",
        "convnext_tiny",
        0,
        False,
    )
    assert config.output == "s3://models/insects/validation/"
    # Validation claims the job's whole output prefix for this job's UID.
    assert (config.job_uid, config.job_output) == (UID, "s3://models/insects/")
    unslashed = trial_config(job(output="s3://models/insects"), record, TABLE, None, "m", prices)
    assert unslashed.job_output == "s3://models/insects/"
    # Validation checks the budget at the operator's prices; it is the only reader.
    assert TrialConfig.model_validate_json(config.model_dump_json()).cost_model == prices
    assert trial_config(job(), RECORD, TABLE, TRIAL, "resnet50", prices).cost_model is None


@pytest.mark.parametrize("gpus", [1, 4, 8])
def test_shared_memory_is_sized_for_data_loaders(gpus: int) -> None:
    record = RECORD.model_copy(update={"gpus": gpus})
    spec = pod(job(), record, "t0", POLICY)["spec"]
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"


def test_validation_prices_listed_trials_by_the_hyperparameters_that_bound_their_run() -> None:
    trials = [
        {"model": "resnet50", "hyperparameters": {"epochs": 2, "max_steps": 40, "batch_size": 16}},
        # wrong types are the trainer's config check to refuse by name, not priced here
        {"model": "resnet18", "gpus": 2, "hyperparameters": {"epochs": "2", "max_steps": True}},
    ]
    listed = given_trials(job(search={"trials": trials}).spec)
    assert listed == [
        GivenTrial(model="resnet50", gpus=1, epochs=2.0, max_steps=40, batch_size=16),
        GivenTrial(model="resnet18", gpus=2),
    ]
