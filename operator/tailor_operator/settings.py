"""The operator's settings, from environment variables (the Helm chart sets them).

Every variable is optional; a malformed one stops the operator at start with a
message naming it.
"""

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from tailor_contract.cost import REFERENCE, CostModel
from tailor_operator.core.boundary import endpoint_origin
from tailor_operator.core.planners import PLANNERS
from tailor_operator.core.policy import DEFAULT_TRAIN_COMMAND, DEFAULT_VALIDATE_COMMAND, Policy

T = TypeVar("T")
PREFIX = "TAILOR_"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    policy: Policy = field(default_factory=Policy)
    calibration: tuple[str, str] | None = ("tailor-system", "tailor-calibration")
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    workers: int = 8
    resync_seconds: float = 300.0
    # How long the calibration table and the backbone catalog are read from a cache.
    cache_seconds: float = 30.0
    metrics_port: int = 8080
    health_port: int = 8081
    planner: str = "automl"  # the AutoML search; "simple": the given trials as they are
    # kopf peering: None runs standalone; a name makes replicas share the peering
    # object of that name, where the highest priority works and the others wait.
    peering_name: str | None = None
    peering_priority: int | None = None  # None: start_priority() of this process


def start_priority(started_ns: int) -> int:
    """A replica's peering priority from when it started: the older one wins.

    kopf pauses every replica that sees another of the same priority, so equal
    priorities would stop all of them: two replicas tie only if they start in the
    same microsecond. A replica that restarts becomes the youngest and stands by,
    so the one already working keeps working.
    """
    return -(started_ns // 1000)


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    text = env.get(PREFIX + name)
    if text is None or text.strip() == "":
        return default
    try:
        return parse(text.strip())
    except ValueError as error:
        raise SettingsError(f"{PREFIX}{name}={text!r}: {error}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):  # also refuses nan
        raise ValueError("must be a finite number, not negative")
    return value


def _command(text: str) -> tuple[str, ...]:
    words = tuple(shlex.split(text))
    if not words or not words[0]:
        raise ValueError("must name a program")
    return words


def _object_ref(text: str) -> tuple[str, str] | None:
    if text.lower() == "none":
        return None
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name:
        raise ValueError("must be NAMESPACE/NAME (or 'none')")
    return namespace, name


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError("must be a port number")
    return value


_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def _dns_name(text: str) -> str:
    # The name of a Kubernetes object (the peering, a priority class): a DNS subdomain.
    if len(text) > 253 or not _DNS_NAME.fullmatch(text):
        raise ValueError("must be a lowercase DNS name (letters, digits, '-', '.')")
    return text


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):  # also refuses nan
        raise ValueError("must be a finite positive number")
    return value


def _cost(env: Mapping[str, str]) -> CostModel:
    """The search's priors: a platform's own attempt overhead and speed (docs/automl.md)."""
    return CostModel(
        fixed_seconds=_read(env, "COST_FIXED_SECONDS", _seconds, REFERENCE.fixed_seconds),
        reference_images_per_second=_read(
            env, "COST_IMAGES_PER_SECOND", _positive, REFERENCE.reference_images_per_second
        ),
        floor_seconds_per_image=_read(
            env, "COST_FLOOR_SECONDS_PER_IMAGE", _seconds, REFERENCE.floor_seconds_per_image
        ),
        detection_overhead=_read(
            env, "COST_DETECTION_OVERHEAD", _positive, REFERENCE.detection_overhead
        ),
    )


def _planner(text: str) -> str:
    if text not in PLANNERS:
        raise ValueError(f"must be one of {', '.join(PLANNERS)}")
    return text


def _allow_list(
    env: Mapping[str, str], name: str, check: Callable[[str], object]
) -> tuple[str, ...] | None:
    """Unset: None (anything); else the comma-separated entries, each checked. Set
    but empty: () (nothing), so that a list emptied on purpose never means 'any'."""
    text = env.get(PREFIX + name)
    if text is None:
        return None
    entries = tuple(e.strip() for e in text.split(",") if e.strip())
    for entry in entries:
        try:
            check(entry)
        except ValueError as error:
            raise SettingsError(f"{PREFIX}{name}: {entry!r} {error}") from None
    return entries


def _endpoint(text: str) -> str:
    if endpoint_origin(text) is None:
        raise ValueError("must be an http(s)://host[:port] URL, without a path or user")
    return text


def _label_key(text: str) -> str:
    # A toleration's key is a label key: an optional DNS prefix, then a name.
    prefix, _, name = text.rpartition("/")
    if (prefix and not _DNS_NAME.fullmatch(prefix)) or not _LABEL_NAME.fullmatch(name):
        raise ValueError("must be a label key ([prefix/]name)")
    return text


def load_settings(env: Mapping[str, str]) -> Settings:
    base = Policy()
    policy = Policy(
        trainer_image=_read(env, "TRAINER_IMAGE", str, base.trainer_image),
        train_command=_read(env, "TRAIN_COMMAND", _command, DEFAULT_TRAIN_COMMAND),
        validate_command=_read(env, "VALIDATE_COMMAND", _command, DEFAULT_VALIDATE_COMMAND),
        image_pull_policy=_read(env, "IMAGE_PULL_POLICY", str, base.image_pull_policy),
        default_model=_read(env, "DEFAULT_MODEL", str, base.default_model),
        max_attempts=_read(env, "MAX_ATTEMPTS", _positive_int, base.max_attempts),
        max_waived_attempts=_read(
            env, "MAX_WAIVED_ATTEMPTS", _positive_int, base.max_waived_attempts
        ),
        backoff_base_seconds=_read(
            env, "BACKOFF_BASE_SECONDS", _seconds, base.backoff_base_seconds
        ),
        backoff_max_seconds=_read(env, "BACKOFF_MAX_SECONDS", _seconds, base.backoff_max_seconds),
        allowance_grace_seconds=_read(
            env, "ALLOWANCE_GRACE_SECONDS", _seconds, base.allowance_grace_seconds
        ),
        image_pull_timeout_seconds=_read(
            env, "IMAGE_PULL_TIMEOUT_SECONDS", _seconds, base.image_pull_timeout_seconds
        ),
        deletion_timeout_seconds=_read(
            env, "DELETION_TIMEOUT_SECONDS", _seconds, base.deletion_timeout_seconds
        ),
        termination_grace_seconds=_read(
            env, "TERMINATION_GRACE_SECONDS", _positive_int, base.termination_grace_seconds
        ),
        run_as_user=_read(env, "RUN_AS_USER", _positive_int, base.run_as_user),
        cpu_per_gpu=_read(env, "CPU_PER_GPU", _seconds, base.cpu_per_gpu),
        memory_gib_per_gpu=_read(env, "MEMORY_GIB_PER_GPU", _seconds, base.memory_gib_per_gpu),
        validation_cpu=_read(env, "VALIDATION_CPU", _seconds, base.validation_cpu),
        validation_memory_gib=_read(
            env, "VALIDATION_MEMORY_GIB", _seconds, base.validation_memory_gib
        ),
        cost=_cost(env),
        allowed_endpoints=_allow_list(env, "ALLOWED_ENDPOINTS", _endpoint),
        allowed_priority_classes=_allow_list(env, "ALLOWED_PRIORITY_CLASSES", _dns_name),
        allowed_toleration_keys=_allow_list(env, "ALLOWED_TOLERATION_KEYS", _label_key),
    )
    defaults = Settings()
    return Settings(
        policy=policy,
        calibration=_read(env, "CALIBRATION_CONFIGMAP", _object_ref, defaults.calibration),
        namespaces=_read(
            env, "NAMESPACES", lambda t: tuple(n.strip() for n in t.split(",") if n.strip()), ()
        ),
        workers=_read(env, "WORKERS", _positive_int, defaults.workers),
        resync_seconds=_read(env, "RESYNC_SECONDS", _seconds, defaults.resync_seconds),
        cache_seconds=_read(env, "CACHE_SECONDS", _seconds, defaults.cache_seconds),
        metrics_port=_read(env, "METRICS_PORT", _port, defaults.metrics_port),
        health_port=_read(env, "HEALTH_PORT", _port, defaults.health_port),
        planner=_read(env, "PLANNER", _planner, defaults.planner),
        peering_name=_read(env, "PEERING_NAME", _dns_name, None),
        peering_priority=_read(env, "PEERING_PRIORITY", int, None),
    )
