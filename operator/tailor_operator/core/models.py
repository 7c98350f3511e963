"""A TrainingJob as the operator sees it: identity, spec and status, typed."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tailor_operator.core.spec import TrainingJobSpec
from tailor_operator.core.status import TrainingJobStatus
from tailor_operator.core.timeutil import parse_time

GROUP = "tailor.dev"
VERSION = "v1alpha1"
KIND = "TrainingJob"
PLURAL = "trainingjobs"
API_VERSION = f"{GROUP}/{VERSION}"


class InvalidObject(ValueError):
    """An object the operator cannot act on; the message names the field."""


@dataclass(frozen=True)
class ObjectRef:
    namespace: str
    name: str
    uid: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class TrainingJob:
    ref: ObjectRef
    generation: int
    resource_version: str
    created_at: datetime | None
    deleting: bool
    spec: TrainingJobSpec
    status: TrainingJobStatus


def describe_validation_error(prefix: str, error: ValidationError) -> str:
    """'spec.budget.gpuHours: Field required; ...' from a pydantic error."""
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in (prefix, *item["loc"]))
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_trainingjob(raw: Mapping[str, Any]) -> TrainingJob:
    """The typed job from the object the API server returned; InvalidObject if unusable."""
    metadata = raw.get("metadata") or {}
    try:
        ref = ObjectRef(
            namespace=str(metadata["namespace"]),
            name=str(metadata["name"]),
            uid=str(metadata["uid"]),
        )
    except KeyError as missing:
        raise InvalidObject(f"metadata.{missing.args[0]} is missing") from None
    try:
        spec = TrainingJobSpec.model_validate(raw.get("spec") or {})
    except ValidationError as error:
        raise InvalidObject(describe_validation_error("spec", error)) from None
    try:
        status = TrainingJobStatus.model_validate(raw.get("status") or {})
    except ValidationError as error:
        # A status the operator cannot read would lose ledger lines if overwritten.
        raise InvalidObject(describe_validation_error("status", error)) from None
    return TrainingJob(
        ref=ref,
        generation=int(metadata.get("generation") or 0),
        resource_version=str(metadata.get("resourceVersion") or ""),
        created_at=parse_time(metadata.get("creationTimestamp")),
        deleting=bool(metadata.get("deletionTimestamp")),
        spec=spec,
        status=status,
    )
