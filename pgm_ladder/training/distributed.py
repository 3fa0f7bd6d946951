"""Multi-process training under torchrun: process-group set-up (NCCL on GPUs, gloo on
CPU), the DDP wrapper, and the few collectives the trainer needs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # whether this context initialised the process group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistContext:
    """Rank and world size as torchrun sets them (a single process otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(),
                           int(os.environ.get("LOCAL_RANK", "0")))
    return DistContext(int(os.environ.get("RANK", "0")), world,
                       int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(ctx: DistContext, device: torch.device) -> DistContext:
    """Join torchrun's process group if there is one and nobody has joined it yet."""
    if not ctx.enabled or dist.is_initialized():
        return ctx
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), ctx.local_rank, owns_group=True)


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    if not ctx.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def any_flag(ctx: DistContext, device: torch.device, *flags: bool) -> list[bool]:
    """Each flag OR-ed over all processes (so that all stop at the same step)."""
    if not ctx.enabled:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def mean_over_processes(ctx: DistContext, device: torch.device, values: dict) -> dict:
    """Average a dict of floats over processes (same keys on every process)."""
    if not ctx.enabled or not values:
        return values
    keys = list(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: v / ctx.world_size for k, v in zip(keys, t.tolist())}


def gather(ctx: DistContext, obj: Any) -> list:
    """Every process's ``obj``, in rank order, on every process."""
    if not ctx.enabled:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
