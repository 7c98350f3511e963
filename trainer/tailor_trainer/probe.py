"""The linear probe: a frozen backbone's pooled features, computed once, and a linear
classifier fitted on them by full-batch L-BFGS, written into the model's own classifier.

The result is an ordinary timm model (backbone untouched, classifier replaced): it is
evaluated, kept as the best checkpoint and exported like any trained model, and it is
where `probe_finetune` starts fine-tuning from.
"""

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from tailor_trainer.distributed import World
from tailor_trainer.errors import ConfigError

log = logging.getLogger(__name__)

MAX_ITERATIONS = 500
_CHUNK = 25  # L-BFGS iterations between two looks at the stop request

# After each batch: (images done so far, seconds the batch took) -> None to go on,
# or why to stop ("signal": abandon; "allowance": keep what is done).
AfterBatch = Callable[[int, float], str | None]


@dataclass
class Features:
    features: torch.Tensor  # (N, D) float32, on the model's device
    targets: torch.Tensor  # (N,) int64 class indices, or (N, C) float multi-hot
    total: int  # images in the split
    stopped: str | None = None  # why extraction ended early, if it did

    @property
    def count(self) -> int:
        return int(self.features.shape[0])


@dataclass
class ProbeFit:
    weight: torch.Tensor  # (C, D), acting on the raw (unstandardised) features
    bias: torch.Tensor  # (C,)
    iterations: int  # L-BFGS iterations
    loss: float  # the data term at the end (mean cross-entropy, or summed BCE per image)


def probe_classifier(model: torch.nn.Module) -> torch.nn.Linear:
    """The Linear layer a probe writes; a ConfigError if the model has none."""
    get = getattr(model, "get_classifier", None)
    classifier = get() if callable(get) else None
    if not isinstance(classifier, torch.nn.Linear) or not hasattr(model, "forward_head"):
        raise ConfigError(
            f"{type(model).__name__} has no linear classifier (timm get_classifier() is "
            f"{type(classifier).__name__}): recipes linear_probe and probe_finetune need one"
        )
    return classifier


def pooled_features(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What timm's classifier sees: forward_features, then the head's pre-logits."""
    # timm's models define both; nn.Module's own typing knows neither.
    forward_head = cast(Callable[..., torch.Tensor], model.forward_head)
    forward_features = cast(Callable[[torch.Tensor], torch.Tensor], model.forward_features)
    return forward_head(forward_features(images), pre_logits=True)


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[object]],
    channels_last: bool,
    after_batch: AfterBatch,
) -> Features:
    """Pooled features of every image the loader yields, in eval mode (no dropout, norm
    statistics frozen), until after_batch says stop."""
    was_training = model.training
    model.eval()
    outputs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    done, stopped = 0, None
    total = len(loader.dataset)  # type: ignore[arg-type]
    try:
        since = time.monotonic()
        for images, target in loader:
            batch = images.to(device, non_blocking=True)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with autocast():
                features = pooled_features(model, batch)
            outputs.append(features.float())
            targets.append(target.to(device))
            done += len(images)
            now = time.monotonic()
            stopped = after_batch(done, now - since)
            since = now
            if stopped:
                break
    finally:
        model.train(was_training)
    if not outputs:
        return Features(torch.zeros(0, 0, device=device), torch.zeros(0), total, stopped)
    return Features(torch.cat(outputs), torch.cat(targets), total, stopped)


def _data_loss(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        # Each class its own logistic regression: summed over classes, mean over images.
        positives = targets.to(logits.dtype)
        summed = F.binary_cross_entropy_with_logits(logits, positives, reduction="sum")
        return summed / logits.shape[0]
    return F.cross_entropy(logits, targets.long())


def fit_linear_probe(
    features: torch.Tensor,
    targets: torch.Tensor,
    classes: int,
    multilabel: bool,
    weight_decay: float,
    max_iterations: int = MAX_ITERATIONS,
) -> ProbeFit:
    """Multinomial logistic regression (softmax cross-entropy; per-class sigmoid BCE for
    multilabel) on centred features scaled to unit mean variance, with the L2 penalty
    weight_decay / 2 * |W|^2 on the scaled weights (the bias is free), by full-batch
    L-BFGS with a strong Wolfe line search. The centring and scaling are folded into
    the returned weights."""
    if features.shape[0] == 0:
        raise ValueError("a linear probe needs at least one feature vector")
    # float64 where it fits comfortably: L-BFGS's line search likes exact arithmetic.
    dtype = torch.float64 if features.numel() <= 50_000_000 else torch.float32
    x = features.to(dtype)
    mean = x.mean(dim=0)
    # One scale for every feature: the penalty then means the same for every backbone,
    # and nearly constant features are not blown up to the size of informative ones
    # (per-feature standardisation gave them huge weights, which fine-tuning, with its
    # batch statistics, turned into huge logits).
    spread = (x - mean).pow(2).mean().sqrt().clamp_min(1e-8)
    z = (x - mean) / spread
    y = targets.to(x.device)
    weight = torch.zeros(classes, x.shape[1], dtype=dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(classes, dtype=dtype, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=_CHUNK,
        max_eval=_CHUNK * 4,
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _data_loss(z @ weight.T + bias, y, multilabel)
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    iterations = 0
    with torch.enable_grad():
        while iterations < max_iterations:
            optimizer.step(objective)  # type: ignore[no-untyped-call]
            done = int(optimizer.state[weight].get("n_iter", 0))
            converged = done - iterations < _CHUNK
            iterations = done
            if converged:
                break
    with torch.no_grad():
        folded = weight / spread
        final_bias = bias - folded @ mean
        data = float(_data_loss(x @ folded.T + final_bias, y, multilabel))
    return ProbeFit(folded.detach().float(), final_bias.detach().float(), iterations, data)


def probe_logits(features: torch.Tensor, fit: ProbeFit) -> torch.Tensor:
    """What the model with the probe installed answers for these features (float64)."""
    weight = fit.weight.to(features.device, torch.float64)
    return features.double() @ weight.T + fit.bias.to(features.device, torch.float64)


def install_probe(model: torch.nn.Module, fit: ProbeFit) -> None:
    """Writes the fitted weights into the model's classifier, in place."""
    classifier = probe_classifier(model)
    if tuple(classifier.weight.shape) != tuple(fit.weight.shape):
        raise ConfigError(
            f"the probe has shape {tuple(fit.weight.shape)} but the classifier "
            f"{tuple(classifier.weight.shape)}: the model's pre-logits features do not feed "
            f"its classifier"
        )
    with torch.no_grad():
        classifier.weight.copy_(fit.weight.to(classifier.weight))
        if classifier.bias is not None:
            classifier.bias.copy_(fit.bias.to(classifier.bias))


def broadcast_probe(world: World, fit: ProbeFit) -> ProbeFit:
    """Every rank fits the same probe on the same features; rank 0's copy makes them
    bit-identical before DDP trains from it."""
    if not world.distributed:
        return fit
    tensors = [fit.weight.to(world.device).contiguous(), fit.bias.to(world.device).contiguous()]
    for tensor in tensors:
        dist.broadcast(tensor, src=0)
    return ProbeFit(tensors[0], tensors[1], fit.iterations, fit.loss)
