"""One training run over several processes with ``torch.distributed`` (``torchrun``).

Data parallelism over the tasks of a meta-batch: MAML's meta-objective is a mean over tasks
(Finn et al., 2017, Eq. 2), and tasks share nothing but θ (batch norm normalises each task by
its own data), so each rank computes the meta-gradient of its share of the tasks and the shares
are summed with one all-reduce. Every rank draws the *whole* meta-batch from the same seeded
generator and keeps its contiguous share: the tasks a run sees do not depend on the number of
ranks, a checkpoint resumes on any world size, and a run on W ranks equals the one-process run
up to the order of floating-point sums. Rank 0 alone observes, checkpoints, evaluates and stores.

What is split is the *gradient*, which is a mean over tasks for every method here: MAML's and
pretraining's losses are means over tasks, and the gradient of Reptile's surrogate ½‖Φ − W̄‖²
is Φ − W̄, linear in the mean W̄ of the adapted weights. (Reptile's logged loss is then the
mean of the shards' surrogates, not the surrogate of the whole batch.) The same holds for the
chunks of ``RunSettings.task_chunk``.

Launch: ``torchrun --nproc-per-node 2 -m learntolearn train NAME`` (gloo on CPUs, NCCL on GPUs).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor

from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = ["agree", "barrier", "finish", "init_from_env", "reduce_gradients", "shard", "world"]

TIMEOUT = timedelta(hours=2)
"""How long a rank waits in a collective: the other ranks wait there while rank 0 alone
evaluates (milestones, the final evaluation: minutes to tens of minutes on a CPU)."""


def world() -> tuple[int, int]:
    """``(rank, world size)``: ``(0, 1)`` outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1);
    returns this rank's device (``cuda:LOCAL_RANK`` on GPUs). Does nothing in one process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return device
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return device


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if world()[1] > 1:
        dist.barrier()


def finish() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(batch: TaskBatch, rank: int, size: int) -> TaskBatch:
    """This rank's contiguous share of the meta-batch's tasks (sizes differ by at most one)."""
    if batch.num_tasks < size:
        raise ValueError(
            f"a meta-batch of {batch.num_tasks} tasks cannot be split over {size} ranks; "
            "use fewer ranks or a larger meta_batch"
        )
    bounds = torch.linspace(0, batch.num_tasks, size + 1).round().long().tolist()
    return batch[bounds[rank] : bounds[rank + 1]]


def reduce_gradients(params: Params, loss: Tensor) -> Tensor:
    """Sum every parameter's ``.grad`` and ``loss`` over the ranks (one all-reduce); each rank
    weighted its loss by its share of the tasks, so the sums are the meta-batch's mean."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params.values()]
    flat = torch.cat([loss.detach().reshape(1), *(g.reshape(-1) for g in grads)])
    dist.all_reduce(flat)
    offset = 1
    for p, g in zip(params.values(), grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()
    return flat[0]


def agree(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. whether the time budget is spent)."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())
