"""Several GPUs in one pod: torchrun starts one process per GPU and sets WORLD_SIZE."""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int
    local_rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world() -> World:
    """Join the process group when torchrun started us; a single process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(rank=rank, local_rank=local_rank, size=size, device=device)


def any_rank(world: World, flags: list[bool]) -> list[bool]:
    """Each flag true on some rank, so every rank takes the same stop decision together."""
    if not world.distributed:
        return flags
    tensor = torch.tensor([1.0 if f else 0.0 for f in flags], device=world.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in tensor.tolist()]


def least_on_any_rank(world: World, value: int) -> int:
    """The smallest of every rank's `value`, so all ranks take the same one."""
    if not world.distributed:
        return value
    tensor = torch.tensor([float(value)], device=world.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
