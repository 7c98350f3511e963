"""Admission, the kubelet's way: a pod runs only if its requests fit what is left.

The scheduler already placed the pod by the same arithmetic; checking again here
catches a pod bound by hand (spec.nodeName) to a node that is full.
"""

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


class QuantityError(ValueError):
    """A resource quantity Kubernetes would not accept."""


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes quantity ("500m", "2Gi", "1e3", 4) as a plain number."""
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(text.strip())
    if match is None or match.group(2) not in _SUFFIXES:
        raise QuantityError(f"{text!r} is not a resource quantity")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise QuantityError(f"{text!r} is not a resource quantity") from None
    return float(number * _SUFFIXES[match.group(2)])


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """What the pod asks for: the sum over its containers (the API server copies
    limits into missing requests, so requests are the whole story)."""
    total: dict[str, float] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        for name, value in requests.items():
            total[name] = total.get(name, 0.0) + parse_quantity(value)
    return total


def _show(resource: str, value: float) -> str:
    if resource == "cpu":
        return f"{round(value * 1000)}m"
    return str(int(value)) if value == int(value) else f"{value:g}"


def admission_failure(
    allocatable: Mapping[str, float],
    running: Iterable[Mapping[str, float]],
    wanted: Mapping[str, float],
) -> tuple[str, str] | None:
    """None when `wanted` fits next to `running`; else the kubelet's (reason, message),
    e.g. ("OutOfnvidia.com/gpu", "Node didn't have enough resource: ...")."""
    used: dict[str, float] = {}
    for requests in running:
        for name, value in requests.items():
            used[name] = used.get(name, 0.0) + value
    for name, value in sorted(wanted.items()):
        if value <= 0:
            continue
        capacity = allocatable.get(name, 0.0)
        in_use = used.get(name, 0.0)
        if in_use + value > capacity + 1e-9:
            return (
                f"OutOf{name}",
                f"Pod was rejected: Node didn't have enough resource: {name}, requested: "
                f"{_show(name, value)}, used: {_show(name, in_use)}, "
                f"capacity: {_show(name, capacity)}",
            )
    return None
