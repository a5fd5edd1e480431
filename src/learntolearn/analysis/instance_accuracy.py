"""Accuracy by instance number: Santoro et al.'s (ICML 2016) measure of one-shot learning in a
sequence, Sec. 4.1, Table 1.

In an episode read one example at a time, the n-th *instance* of a class is its n-th
presentation. A learner that guesses before it has seen a class is at chance on the first
instance (1/N among classes it cannot tell apart, better if it knows which labels are still
unused); one that learns from a single example is right on the second. Counting accuracy per
instance number therefore shows how fast the network learns within an episode.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["instance_accuracy", "instance_numbers"]


def instance_numbers(labels: Tensor) -> Tensor:
    """``[B, S]``: for each step, how many times its label has appeared up to and including it
    (1 for a class's first presentation)."""
    seen = F.one_hot(labels).cumsum(1)
    return seen.gather(2, labels.unsqueeze(-1)).squeeze(-1)


def instance_accuracy(logits: Tensor, labels: Tensor, instances: int) -> Tensor:
    """``[B, instances]``: each task's accuracy over the steps that are a class's 1st, 2nd, …
    presentation (online predictions ``logits [B, S, N]`` against ``labels [B, S]``; NaN where
    a task has no such step)."""
    correct = (logits.argmax(-1) == labels).to(logits.dtype)
    number = instance_numbers(labels)
    mask = F.one_hot(number - 1, max(instances, int(number.max()))).to(logits.dtype)
    mask = mask[..., :instances]  # [B, S, instances]
    return (correct.unsqueeze(-1) * mask).sum(1) / mask.sum(1)
