"""Pure builders of the objects an attempt needs: its ConfigMap and its Pod.

Every pod meets the Pod Security "restricted" profile, never mounts a
service-account token, and gets S3 credentials only through secretKeyRef: the
operator itself never reads the Secret.
"""

from collections.abc import Sequence
from typing import Any

from tailor_contract import (
    TERMINATION_MESSAGE_PATH,
    DatasetRef,
    GivenTrial,
    PretrainedBackbone,
    SearchTrial,
    TrialConfig,
)
from tailor_contract.cost import CostModel
from tailor_contract.nodes import CPU_REQUEST_ENV, GPU_PRODUCT_LABEL, GPU_RESOURCE
from tailor_operator.core.calibration import CalibrationTable
from tailor_operator.core.models import API_VERSION, KIND, TrainingJob
from tailor_operator.core.naming import label_value
from tailor_operator.core.observe import (
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_ROLE,
    LABEL_TRIAL,
    LEDGER_FINALIZER,
    TRAINER_CONTAINER,
)
from tailor_operator.core.policy import Policy
from tailor_operator.core.spec import TrainingJobSpec
from tailor_operator.core.status import AttemptRecord, TrialStatus

CONFIG_DIR = "/etc/tailor"
CONFIG_FILE = "trial.json"
ROLE_VALIDATE = "validate"
ROLE_TRIAL = "trial"
VALIDATION_TRIAL = "validate"
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

Manifest = dict[str, Any]


def job_output(job: TrainingJob) -> str:
    return f"{job.spec.output.rstrip('/')}/"


def trial_output(job: TrainingJob, trial: str) -> str:
    where = "validation" if trial == VALIDATION_TRIAL else f"trials/{trial}"
    return f"{job_output(job)}{where}/"


def trial_config(
    job: TrainingJob,
    record: AttemptRecord,
    table: CalibrationTable,
    trial: TrialStatus | None,
    validation_model: str,
    cost: CostModel,
    catalog: Sequence[PretrainedBackbone] = (),
    search: Sequence[SearchTrial] = (),
) -> TrialConfig:
    """The config one attempt reads; trial None is the CPU-only validation, which prices
    the cheapest useful search of validation_model at `cost` and verifies `catalog` (the
    entries serving the task). A trial finds its backbone by name in `catalog` (what
    validation verified); `search` is the trials so far, for the report."""
    spec = job.spec
    gpu_types = list(spec.resources.gpu_types) or None
    name = trial.name if trial else VALIDATION_TRIAL
    backbone = None
    if trial is not None and trial.backbone is not None:
        backbone = next((e for e in catalog if e.name == trial.backbone), None)
        if backbone is None:
            raise ValueError(f"trial {trial.name}: backbone {trial.backbone} was not verified")
    return TrialConfig(
        job=job.ref.key,
        # The job's identity: its checkpoints record it, its validation claims the
        # output prefix for it, and another job's outputs there are refused.
        job_uid=job.ref.uid,
        job_output=job_output(job),
        trial=name,
        attempt=record.attempt,
        task=spec.task,
        dataset=DatasetRef(
            train=spec.dataset.train,
            evaluation=spec.dataset.evaluation,
            endpoint=spec.dataset.endpoint,
        ),
        model=trial.model if trial else validation_model,
        pretrained=trial.pretrained if trial else None,
        backbone=backbone,
        catalog=list(catalog) if trial is None else [],
        search=list(search) if trial is not None else [],
        given_trials=given_trials(spec) if trial is None else [],
        candidate_models=list(spec.search.models) if trial is None else [],
        hyperparameters=dict(trial.hyperparameters) if trial else {},
        allowance_gpu_seconds=record.allowance_gpu_seconds,
        # Not scheduled yet: the most expensive GPU it may land on keeps it within budget.
        calibration_factor=table.highest_factor(gpu_types),
        calibration_factors=dict(table.factors),
        gpus=record.gpus,
        output=trial_output(job, name),
        export=trial is not None,
        primary_metric=spec.search.primary_metric,
        cost_model=None if trial else cost,
    )


def given_trials(spec: TrainingJobSpec) -> list[GivenTrial]:
    """spec.search.trials as validation checks and prices them (the GPUs they will get)."""
    listed = []
    for trial in spec.search.trials:
        hp = trial.hyperparameters
        listed.append(
            GivenTrial(
                model=trial.model,
                pretrained=trial.pretrained,
                gpus=trial.gpus or spec.resources.max_gpus_per_trial,
                input_size=_positive_int(hp.get("input_size")),
                epochs=_positive_number(hp.get("epochs")),
                max_steps=_positive_int(hp.get("max_steps")),
                batch_size=_positive_int(hp.get("batch_size")),
            )
        )
    return listed


# A value of the wrong type is the trainer's to refuse by name (its config check); here
# it only goes unpriced.
def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _positive_number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def labels(job: TrainingJob, trial: str, attempt: int) -> dict[str, str]:
    extra = dict(job.spec.pod_metadata.labels)
    return extra | {
        "app.kubernetes.io/name": "tailor-trainer",
        "app.kubernetes.io/managed-by": "tailor-operator",
        "app.kubernetes.io/instance": label_value(job.ref.name),
        LABEL_JOB: label_value(job.ref.name),
        LABEL_TRIAL: trial,
        LABEL_ATTEMPT: str(attempt),
        LABEL_ROLE: ROLE_VALIDATE if trial == VALIDATION_TRIAL else ROLE_TRIAL,
    }


def owner_reference(job: TrainingJob) -> dict[str, Any]:
    # blockOwnerDeletion false: deleting a TrainingJob never waits for the operator.
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": job.ref.name,
        "uid": job.ref.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def config_map(
    job: TrainingJob, record: AttemptRecord, trial: str, config: TrialConfig
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": record.pod,
            "namespace": job.ref.namespace,
            "labels": labels(job, trial, record.attempt),
            "ownerReferences": [owner_reference(job)],
        },
        "immutable": True,
        "data": {CONFIG_FILE: config.model_dump_json(indent=2)},
    }


def _quantity_cpu(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def _quantity_memory(gib: float) -> str:
    return f"{round(gib * 1024)}Mi"


def _env(job: TrainingJob, policy: Policy) -> list[dict[str, Any]]:
    dataset = job.spec.dataset
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "TAILOR_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "TAILOR_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        # The trainer sizes its threads and loader workers by what the pod asked for,
        # not by the node's cores, which it shares.
        {
            "name": CPU_REQUEST_ENV,
            "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
        },
    ]
    if dataset.credentials_secret:
        env += [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": dataset.credentials_secret, "key": key}},
            }
            for key in S3_KEYS
        ]
    if dataset.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": dataset.endpoint})
    env += [{"name": name, "value": value} for name, value in policy.extra_env]
    return env


def _resources(gpus: int, policy: Policy) -> dict[str, Any]:
    if gpus == 0:
        cpu, memory = policy.validation_cpu, policy.validation_memory_gib
        return {
            "requests": {"cpu": _quantity_cpu(cpu), "memory": _quantity_memory(memory)},
            "limits": {"memory": _quantity_memory(memory)},
        }
    per_trial = _quantity_memory(policy.memory_gib_per_gpu * gpus)
    return {
        "requests": {
            "cpu": _quantity_cpu(policy.cpu_per_gpu * gpus),
            "memory": per_trial,
            GPU_RESOURCE: str(gpus),
        },
        "limits": {"memory": per_trial, GPU_RESOURCE: str(gpus)},
    }


def _volumes(name: str, gpus: int, policy: Policy) -> tuple[list[Manifest], list[Manifest]]:
    volumes: list[Manifest] = [
        {
            "name": "config",
            "configMap": {"name": name, "items": [{"key": CONFIG_FILE, "path": CONFIG_FILE}]},
        },
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[Manifest] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if gpus > 0:
        # Data loader workers share tensors through /dev/shm; the default 64 MiB is too small.
        volumes.append(
            {
                "name": "dshm",
                "emptyDir": {"medium": "Memory", "sizeLimit": _quantity_memory(policy.shm_gib)},
            }
        )
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return volumes, mounts


def _placement(job: TrainingJob, gpus: int) -> dict[str, Any]:
    resources = job.spec.resources
    placement: dict[str, Any] = {}
    if resources.node_selector:
        placement["nodeSelector"] = dict(resources.node_selector)
    if resources.tolerations:
        placement["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in resources.tolerations
        ]
    if resources.priority_class_name:
        placement["priorityClassName"] = resources.priority_class_name
    if gpus > 0 and resources.gpu_types:
        placement["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": GPU_PRODUCT_LABEL,
                                    "operator": "In",
                                    "values": list(resources.gpu_types),
                                }
                            ]
                        }
                    ]
                }
            }
        }
    return placement


def pod(job: TrainingJob, record: AttemptRecord, trial: str, policy: Policy) -> Manifest:
    """The attempt's pod; its ledger finalizer keeps it until its end is recorded."""
    command = policy.validate_command if trial == VALIDATION_TRIAL else policy.train_command
    volumes, mounts = _volumes(record.pod, record.gpus, policy)
    container = {
        "name": TRAINER_CONTAINER,
        "image": policy.trainer_image,
        "imagePullPolicy": policy.image_pull_policy,
        "command": list(command),
        "env": _env(job, policy),
        "resources": _resources(record.gpus, policy),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            # The trainer writes only to /tmp (an emptyDir: HOME, the data cache, the
            # export's scratch) and /dev/shm; the image itself is never written.
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": record.pod,
            "namespace": job.ref.namespace,
            "labels": labels(job, trial, record.attempt),
            "annotations": dict(job.spec.pod_metadata.annotations),
            "ownerReferences": [owner_reference(job)],
            "finalizers": [LEDGER_FINALIZER],
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": policy.termination_grace_seconds,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": policy.run_as_user,
                "runAsGroup": policy.run_as_user,
                "fsGroup": policy.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
            **_placement(job, record.gpus),
        },
    }
