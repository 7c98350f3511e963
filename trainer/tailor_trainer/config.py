"""Reads the trial config a run is given, and resolves what it leaves to defaults."""

import json
import os
from pathlib import Path

from pydantic import ValidationError

from tailor_contract import Hyperparameters, TrialConfig
from tailor_trainer.errors import ConfigError

PRIMARY_METRIC = {"classification": "top1_accuracy", "multilabel": "average_precision_macro"}
_SHARED = (
    "average_precision_macro",
    "average_precision_micro",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_micro",
    "recall_micro",
    "f1_micro",
)
METRICS = {
    "classification": frozenset({"top1_accuracy", "top5_accuracy", "calibration_ece", *_SHARED}),
    "multilabel": frozenset({"accuracy", *_SHARED}),
}


def _errors(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'document'}: {item['msg']}"
        for item in error.errors()
    )


def load_trial_config(path: str) -> TrialConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the trial config {path}: {error}") from error
    try:
        config = TrialConfig.model_validate(json.loads(text))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not JSON: {error}") from error
    except ValidationError as error:
        raise ConfigError(f"{path}: {_errors(error)}") from error
    if config.task not in PRIMARY_METRIC:
        raise ConfigError(f"task {config.task!r} is not supported by this trainer yet")
    known = METRICS[config.task]
    if config.primary_metric is not None and config.primary_metric not in known:
        raise ConfigError(f"primary_metric {config.primary_metric!r} is not one of {sorted(known)}")
    return config


def hyperparameters_of(config: TrialConfig) -> Hyperparameters:
    try:
        return Hyperparameters.model_validate(config.hyperparameters)
    except ValidationError as error:
        raise ConfigError(f"hyperparameters: {_errors(error)}") from error


def primary_metric_of(config: TrialConfig) -> str:
    return config.primary_metric or PRIMARY_METRIC[config.task]


def metrics_port_of(config: TrialConfig) -> int:
    """The config's port, else $TAILOR_METRICS_PORT, else 0 (no endpoint)."""
    if config.metrics_port is not None:
        return config.metrics_port
    raw = os.environ.get("TAILOR_METRICS_PORT", "0")
    try:
        return int(raw)
    except ValueError as error:
        raise ConfigError(f"TAILOR_METRICS_PORT must be a port number, not {raw!r}") from error
