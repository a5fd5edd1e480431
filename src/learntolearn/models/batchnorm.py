"""Batch normalisation whose statistics can come from a chosen part of the batch.

MAML's reference code normalises with the statistics of whatever batch it is given, at
training *and* test time, so the query predictions of a task depend on the other query
examples: the evaluation is *transductive*. Passing ``stats_from=n`` normalises the whole
input with the statistics of its first ``n`` rows only; putting a task's support set first
makes query predictions depend on the support set alone (non-transductive).

Statistics are never tracked across batches: every task is normalised by its own data, which
is what makes the layer safe to ``vmap`` over tasks and to differentiate twice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TaskBatchNorm", "task_batch_norm"]


def task_batch_norm(
    x: Tensor, weight: Tensor, bias: Tensor, stats_from: int | None = None, eps: float = 1e-5
) -> Tensor:
    """Normalise ``x`` over every dimension but the channels (dim 1) with the statistics of
    its first ``stats_from`` rows (all rows: None), then scale and shift per channel."""
    if stats_from is None:  # the fused kernel; it never touches running statistics here
        return F.batch_norm(x, None, None, weight, bias, True, 0.0, eps)
    dims = [0, *range(2, x.dim())]
    var, mean = torch.var_mean(x[:stats_from], dim=dims, unbiased=False, keepdim=True)
    shape = [1, -1] + [1] * (x.dim() - 2)
    scale = weight.view(shape) * torch.rsqrt(var + eps)
    return torch.addcmul(bias.view(shape) - mean * scale, x, scale)


class TaskBatchNorm(nn.Module):
    """BatchNorm over all dimensions but the channel one (dim 1), learnable scale and shift."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, stats_from: int | None = None) -> Tensor:
        return task_batch_norm(x, self.weight, self.bias, stats_from, self.eps)
