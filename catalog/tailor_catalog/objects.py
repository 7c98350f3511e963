"""Catalog entries as Backbone objects and back.

The conversion itself lives in the contract (`tailor_contract.backbones`), so the
operator, which may not import this package, reads Backbones the same way.
"""

from typing import Any

from tailor_contract.backbones import PretrainedBackbone, from_object, to_object

MANAGED_BY = {"app.kubernetes.io/managed-by": "tailor-models"}


def backbone_object(entry: PretrainedBackbone) -> dict[str, Any]:
    """The Backbone object `tailor-models import` applies for an entry."""
    return to_object(entry, labels=MANAGED_BY)


def entry_of(obj: dict[str, Any]) -> PretrainedBackbone:
    """The catalog entry a Backbone object (as the API server returns it) describes."""
    return from_object(obj)
