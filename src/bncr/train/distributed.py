"""torch.distributed glue: torchrun sets RANK / WORLD_SIZE; without them we run single-process.

Gradients are averaged with one all-reduce per network after backward (no DDP wrapper: R1 needs
a double backward through D, which DDP's reducer does not support well).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed() -> Dist:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_grads(params, d: Dist) -> None:
    """Average the gradients of `params` over ranks (one flat buffer, one collective)."""
    if not d.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= d.world
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()


def broadcast_params(module: torch.nn.Module, d: Dist) -> None:
    """Make every rank start from rank 0's weights."""
    if d.enabled:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()
