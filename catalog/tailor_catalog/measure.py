"""What a backbone costs: forward GMACs per image and parameters."""

import torch
from torch.utils.flop_counter import FlopCounterMode


def gmacs(model: torch.nn.Module, side: int) -> float:
    """Forward multiply-accumulates per image at side x side, in billions.

    PyTorch's FlopCounterMode counts FLOPs of convolutions and matrix products as
    2 x MACs (batch norm, activations and pooling are not counted, as in the MACs
    figures timm and papers quote)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, side, side))
    finally:
        model.train(was_training)
    flops = float(counter.get_total_flops())
    return flops / 2 / 1e9


def parameters_millions(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6
