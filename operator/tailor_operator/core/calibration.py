"""The calibration table: calibrated seconds per real GPU-second, per GPU product.

A ConfigMap the platform team edits, flat so `kubectl edit` is enough:

    data:
      version: "2025-03"            # recorded on every attempt charged with it
      default: "1.0"                # for products not listed (and unlabelled nodes)
      NVIDIA-A100-SXM4-80GB: "1.0"  # the reference GPU
      NVIDIA-H100-80GB-HBM3: "2.2"  # any other key is a product (node label value)
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

VERSION_KEY = "version"
DEFAULT_KEY = "default"
MAX_FACTOR = 100.0


class CalibrationError(ValueError):
    """The table cannot be used; the message names the key."""


@dataclass(frozen=True)
class CalibrationTable:
    version: str
    default_factor: float
    factors: Mapping[str, float] = field(default_factory=dict)

    def factor_for(self, product: str | None) -> float:
        if product is None:
            return self.default_factor
        return self.factors.get(product, self.default_factor)

    def highest_factor(self, products: list[str] | None = None) -> float:
        """The most expensive factor among the allowed products (all, when None)."""
        if products:
            return max(self.factor_for(p) for p in products)
        return max([self.default_factor, *self.factors.values()])


BUILTIN = CalibrationTable(version="builtin", default_factor=1.0)


def _factor(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CalibrationError(f"calibration key {key!r}: {text!r} is not a number") from None
    if not 0.0 < value <= MAX_FACTOR:
        raise CalibrationError(
            f"calibration key {key!r}: factor {value} must be above 0 and at most {MAX_FACTOR}"
        )
    return value


def parse_calibration(data: Mapping[str, str] | None, fallback_version: str) -> CalibrationTable:
    """The table from a ConfigMap's data; `fallback_version` when it names no version."""
    if not data:
        raise CalibrationError("calibration ConfigMap has no data: it needs at least 'default'")
    if DEFAULT_KEY not in data:
        raise CalibrationError(
            "calibration ConfigMap lacks the 'default' key (factor for unknown GPUs)"
        )
    version = (data.get(VERSION_KEY) or "").strip() or fallback_version
    factors = {
        key: _factor(key, value)
        for key, value in data.items()
        if key not in (VERSION_KEY, DEFAULT_KEY)
    }
    return CalibrationTable(
        version=version, default_factor=_factor(DEFAULT_KEY, data[DEFAULT_KEY]), factors=factors
    )
