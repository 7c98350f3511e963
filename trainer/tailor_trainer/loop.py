"""One training step, and the pieces it is built from: loss, precision, memory format."""

import contextlib
import types
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LRScheduler

from tailor_contract import Hyperparameters
from tailor_trainer.distributed import World

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Detection targets: one dict of tensors per image (boxes, labels, ...).
Targets = torch.Tensor | list[dict[str, torch.Tensor]]
Autocast = Callable[[], AbstractContextManager[object]]


def create_loss(multilabel: bool, label_smoothing: float) -> Loss:
    if not multilabel:

        def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)

        return cross_entropy

    def binary_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        smoothed = targets * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits.float(), smoothed)

    return binary_cross_entropy


def create_autocast(device: torch.device, hp: Hyperparameters) -> Autocast:
    """bf16 autocast on CUDA only: CPU autocast is slow and tests want exact fp32."""
    if device.type == "cuda" and hp.precision == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def uses_channels_last(device: torch.device, hp: Hyperparameters) -> bool:
    return device.type == "cuda" and hp.channels_last


def prepare_model(model: torch.nn.Module, world: World, hp: Hyperparameters) -> torch.nn.Module:
    """Device, memory format, DDP and compile, in the order that works for all four."""
    model = model.to(world.device)
    if uses_channels_last(world.device, hp):
        model = model.to(memory_format=torch.channels_last)
    if world.distributed:
        ids = [world.local_rank] if world.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    if hp.compile:
        compiled: torch.nn.Module = torch.compile(model)  # type: ignore[assignment]
        return compiled
    return model


def _held_train(module: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    return torch.nn.Module.train(module, False)


def hold_norm_statistics(model: torch.nn.Module) -> None:
    """Batch-norm layers stay in evaluation mode through every later model.train():
    they normalise with their running (pretrained) statistics and never update them.
    Their affine weights still train. The state dict is unchanged, so checkpoints and
    exports load into a plain model."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.train = types.MethodType(_held_train, module)  # type: ignore[method-assign]
            module.eval()


class StepRunner:
    """Forward, loss, backward, clip, optimizer and scheduler step. Returns the loss on
    the device, unsynchronised: reading it every step would stall a GPU. With no `loss`
    the model computes its own from (images, targets) and autocasts what it should
    (the detector: its convolutions only)."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: LRScheduler,
        loss: Loss | None,
        device: torch.device,
        autocast: Autocast,
        channels_last: bool,
        grad_clip: float,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.loss = loss
        self.device = device
        self.autocast = autocast
        self.channels_last = channels_last
        self.grad_clip = grad_clip

    def __call__(self, images: torch.Tensor, targets: Targets) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.loss is None:
            assert isinstance(targets, list)
            moved = [
                {key: value.to(self.device, non_blocking=True) for key, value in item.items()}
                for item in targets
            ]
            loss: torch.Tensor = self.model(images, moved)
        else:
            assert isinstance(targets, torch.Tensor)
            targets = targets.to(self.device, non_blocking=True)
            with self.autocast():
                loss = self.loss(self.model(images), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])
