"""The contract between the Tailor operator and the trainer program.

Both sides import this package; it needs pydantic alone (no torch, no Kubernetes
client), so the operator can depend on it without the trainer's weight.
"""

from tailor_contract.backbones import PretrainedBackbone
from tailor_contract.documents import (
    TERMINATION_MESSAGE_LIMIT,
    TERMINATION_MESSAGE_PATH,
    AttemptResult,
    DatasetFacts,
    DatasetRef,
    GivenTrial,
    SearchTrial,
    TrialConfig,
)
from tailor_contract.exit_codes import ExitCode, describe_exit
from tailor_contract.hyperparameters import Hyperparameters, hyperparameter_defaults
from tailor_contract.metrics import METRICS, PRIMARY_METRIC, TRAINABLE_TASKS, metric_problem

__all__ = [
    "METRICS",
    "PRIMARY_METRIC",
    "TERMINATION_MESSAGE_LIMIT",
    "TERMINATION_MESSAGE_PATH",
    "TRAINABLE_TASKS",
    "AttemptResult",
    "DatasetFacts",
    "DatasetRef",
    "ExitCode",
    "GivenTrial",
    "Hyperparameters",
    "PretrainedBackbone",
    "SearchTrial",
    "TrialConfig",
    "describe_exit",
    "hyperparameter_defaults",
    "metric_problem",
]
