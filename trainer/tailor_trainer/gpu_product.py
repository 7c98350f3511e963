"""Which calibration factor this attempt's self-stop uses: that of the GPU it runs on.

The operator creates the pod before it is scheduled, so `TrialConfig.calibration_factor`
is the highest factor among the products the job allows; the ledger then charges by the
node's actual product. An attempt on a cheaper GPU that stopped itself at the highest
factor would leave part of its allowance unused (A100 at 1.0 with H100 at 2.2: it stopped
at 45%). So the trainer finds its product and looks it up in `calibration_factors`,
keyed like the node label `nvidia.com/gpu.product`; an unknown product keeps the highest.
"""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

PRODUCT_ENV = "TAILOR_GPU_PRODUCT"


def product_label(name: str) -> str:
    """A device name in the form of the node label `nvidia.com/gpu.product`.

    NVIDIA's GPU feature discovery replaces every space of the device name with '-'
    ("NVIDIA A100-SXM4-80GB" -> "NVIDIA-A100-SXM4-80GB"); a name already in that form
    is unchanged."""
    return name.strip().replace(" ", "-")


@dataclass(frozen=True)
class FactorChoice:
    factor: float
    product: str | None  # in label form; None when neither source named one
    source: str  # "environment", "device" or "none": where the product came from
    reason: str


def choose_factor(
    highest: float,
    factors: Mapping[str, float],
    env_product: str | None,
    device_name: str | None,
) -> FactorChoice:
    """The factor for the product named by the environment, else by the device; the
    highest (`calibration_factor`) when neither names one or the table lacks it."""
    if env_product and env_product.strip():
        product: str | None = product_label(env_product)
        source = "environment"
        origin = f"{PRODUCT_ENV}={env_product.strip()!r}"
    elif device_name and device_name.strip():
        product = product_label(device_name)
        source = "device"
        origin = f"CUDA device 0 is {device_name.strip()!r}"
    else:
        product, source = None, "none"
        origin = f"no CUDA device and no {PRODUCT_ENV}"
    if product is None:
        reason = f"{origin}: the highest factor the job may meet"
        return FactorChoice(highest, None, source, reason)
    factor = factors.get(product)
    if factor is None or not math.isfinite(factor) or factor <= 0:
        reason = (
            f"{origin}, product {product!r} is not in the calibration table: "
            "the highest factor the job may meet"
        )
        return FactorChoice(highest, product, source, reason)
    reason = f"{origin}, product {product!r} in the calibration table"
    return FactorChoice(factor, product, source, reason)


def cuda_device_name() -> str | None:
    """The name of CUDA device 0 (a node has one product), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        return str(torch.cuda.get_device_name(0))
    except (RuntimeError, AssertionError):
        return None


def factor_of_this_gpu(highest: float, factors: Mapping[str, float]) -> FactorChoice:
    """choose_factor with the product from `$TAILOR_GPU_PRODUCT`, else the CUDA device."""
    env_product = os.environ.get(PRODUCT_ENV)
    device_name = None if env_product and env_product.strip() else cuda_device_name()
    return choose_factor(highest, factors, env_product, device_name)
