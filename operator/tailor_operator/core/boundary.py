"""The tenant boundary: what a TrainingJob may put into the pods the operator creates.

Whoever may create a TrainingJob gets pods made with the operator's rights. The
platform team bounds what those pods carry with three allow-lists in the Policy
(None: anything): the S3 endpoint the job's credentials are sent to, the priority
class, and the keys of the tolerations. A job outside them is the user's to fix: it
stays Pending with reason InvalidSpec, and the plan creates no pod for it.
"""

from collections.abc import Sequence
from urllib.parse import urlsplit

from tailor_operator.core.policy import Policy
from tailor_operator.core.spec import TrainingJobSpec

DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_origin(url: str) -> str | None:
    """'scheme://host:port' of an http(s) endpoint; None for anything that could name
    another host than it seems to (user info) or carries more than an origin (a path
    other than '/', a query, a fragment)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = DEFAULT_PORTS[parts.scheme] if port is None else port
    return f"{parts.scheme}://{host}:{port}"


def _allowed(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def _endpoint_problem(spec: TrainingJobSpec, allowed: Sequence[str]) -> str | None:
    endpoint = spec.dataset.endpoint
    if endpoint is None:
        return None  # the S3 client's own default (AWS), not a host the author names
    origins = {endpoint_origin(a) for a in allowed} - {None}
    if endpoint_origin(endpoint) in origins:
        return None
    return (
        f"spec.dataset.endpoint: {endpoint!r} is not an endpoint this cluster sends "
        f"credentials to (allowed: {_allowed(allowed)})"
    )


def _priority_problem(spec: TrainingJobSpec, allowed: Sequence[str]) -> str | None:
    name = spec.resources.priority_class_name
    if name is None or name in allowed:
        return None  # none given: the cluster's default priority class
    return (
        f"spec.resources.priorityClassName: {name!r} is not allowed in this cluster "
        f"(allowed: {_allowed(allowed)})"
    )


def _toleration_problem(spec: TrainingJobSpec, allowed: Sequence[str]) -> str | None:
    for index, toleration in enumerate(spec.resources.tolerations):
        where = f"spec.resources.tolerations[{index}]"
        if toleration.key is None:
            return (
                f"{where}: a toleration without a key tolerates every taint; this cluster "
                f"allows only the keys {_allowed(allowed)}"
            )
        if toleration.key not in allowed:
            return (
                f"{where}.key: {toleration.key!r} is not allowed in this cluster "
                f"(allowed: {_allowed(allowed)})"
            )
    return None


def boundary_problem(spec: TrainingJobSpec, policy: Policy) -> str | None:
    """A message naming the first field outside the platform's allow-lists, or None."""
    checks = (
        (policy.allowed_endpoints, _endpoint_problem),
        (policy.allowed_priority_classes, _priority_problem),
        (policy.allowed_toleration_keys, _toleration_problem),
    )
    for allowed, check in checks:
        if allowed is not None:
            problem = check(spec, allowed)
            if problem is not None:
                return problem
    return None
