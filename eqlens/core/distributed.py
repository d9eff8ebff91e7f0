"""Several processes, one model: torch.distributed helpers for the trainer.

A run is distributed when it was started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment):

    torchrun --nproc_per_node 4 -m eqlens.cli train --model eqcvt --data model_i --out checkpoints/eqcvt

Each rank trains on its own shard of every epoch's shuffled indices (:func:`shard_indices`), so a
simulated dataset renders only its shard on its own GPU; DDP averages the gradients. Backend: NCCL
on CUDA, gloo on the CPU. Only rank 0 writes checkpoints and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False  # this module initialised the process group (and tears it down)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(request: str, context: DistributedContext | None = None) -> torch.device:
    """``"auto"``: CUDA when present, else CPU. Distributed CUDA runs use ``cuda:<local_rank>``."""
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(request)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            from ..errors import TrainingError

            raise TrainingError("device 'cuda' requested but CUDA is not available; use --device cpu")
        if context is not None and context.enabled and device.index is None:
            device = torch.device("cuda", context.local_rank)
        if device.index is not None:
            torch.cuda.set_device(device)
    return device


def init_distributed(device_request: str = "auto") -> DistributedContext:
    """Join the process group ``torchrun`` (or a test) described in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        cuda = device_request != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if cuda else "gloo", rank=rank, world_size=world_size)
        started = True
    return DistributedContext(rank, world_size, local_rank, started)


def shutdown(context: DistributedContext) -> None:
    if context.started_here and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(indices: torch.Tensor, context: DistributedContext, pad: bool = True) -> torch.Tensor:
    """This rank's share of ``indices [N]``: every ``world_size``-th element from ``rank``.

    ``pad=True`` (training) first repeats the first few indices so that every rank gets
    ``ceil(N / world_size)``: equal step counts keep the gradient all-reduces in step.
    ``pad=False`` (evaluation) counts every index exactly once."""
    if not context.enabled:
        return indices
    if not pad:
        return indices[context.rank :: context.world_size]
    per_rank = -(-len(indices) // context.world_size)
    padded = torch.cat([indices, indices[: per_rank * context.world_size - len(indices)]])
    return padded[context.rank :: context.world_size]


def all_reduce_sum(t: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    if context.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_concat(t: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Concatenate every rank's ``t [n_r, ...]`` along dim 0 (ranks may hold different ``n_r``),
    rank 0's rows first; every rank gets the whole result."""
    if not context.enabled:
        return t
    size = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(context.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in range(context.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes, strict=True)])


def broadcast_buffers(module: torch.nn.Module, context: DistributedContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank. DDP syncs them before
    each forward, but the last step's update stays rank-local; this makes the ranks' models equal."""
    if context.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()
