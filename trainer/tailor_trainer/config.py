"""Reads the trial config a run is given, and resolves what it leaves to defaults."""

import json
import os
from pathlib import Path

from pydantic import ValidationError

from tailor_contract import PRIMARY_METRIC, Hyperparameters, TrialConfig, metric_problem
from tailor_trainer.errors import ConfigError


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
    problem = metric_problem(config.task, config.primary_metric)
    if problem is not None:
        raise ConfigError(problem)
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
