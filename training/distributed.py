"""torchrun / DDP plumbing: one process per device, environment from torchrun (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Without torchrun (or WORLD_SIZE=1) everything is a no-op
and the same code runs as a single process."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f'environment variable {name}={value!r} is not an integer') from None


def setup(device: str) -> DistInfo:
    """Initialise the process group when launched by torchrun with WORLD_SIZE > 1.

    device: 'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'. Under torchrun with CUDA each
    process takes cuda:LOCAL_RANK. Backend: NCCL on CUDA, Gloo on CPU.
    Raises:
        ValueError: CUDA requested but not available.
    """
    rank, world, local = _env_int('RANK', 0), _env_int('WORLD_SIZE', 1), _env_int('LOCAL_RANK', 0)
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ValueError(f'train.device={device!r} but CUDA is not available (use cpu or auto)')
        index = local if (world > 1 or device == 'cuda') else int(device.split(':', 1)[1])
        torch.cuda.set_device(index)
        dev = torch.device('cuda', index)
    else:
        dev = torch.device('cpu')
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if dev.type == 'cuda' else 'gloo')
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over processes (returns the input when not distributed)."""
    if info.enabled:
        t = values.to(info.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu()
    return values


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
