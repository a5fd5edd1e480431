"""The one task data model every algorithm in the book consumes.

A *task* is a small supervised problem split into a support set (what the learner adapts on)
and a query set (what the adapted learner is scored on), as in MAML (Finn et al., 2017, Sec. 2.1)
and the episodic protocol of Vinyals et al. (2016). Tasks always travel in batches: the leading
dimension of every tensor indexes the task, so a meta-batch is a single set of tensors that
lives on one device and feeds batched (``vmap``-ed) computation without per-task Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["TaskBatch", "TaskDistribution"]


@dataclass(frozen=True)
class TaskBatch:
    """A batch of ``B`` tasks.

    Shapes: ``x_support [B, S, *in]``, ``y_support [B, S, *out]``, ``x_query [B, Q, *in]``,
    ``y_query [B, Q, *out]``. ``info`` holds per-task metadata with leading dimension ``B``
    (for sinusoids the amplitude and phase, for classification the sampled class ids).
    """

    x_support: Tensor
    y_support: Tensor
    x_query: Tensor
    y_query: Tensor
    info: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b = self.x_support.shape[0]
        for f in ("y_support", "x_query", "y_query"):
            t = getattr(self, f)
            if t.shape[0] != b:
                raise ValueError(
                    f"TaskBatch.{f} has {t.shape[0]} tasks but x_support has {b}: "
                    "every tensor's first dimension must index the same tasks"
                )
        if self.x_support.shape[1] != self.y_support.shape[1]:
            raise ValueError(
                f"support set has {self.x_support.shape[1]} inputs but "
                f"{self.y_support.shape[1]} targets"
            )
        if self.x_query.shape[1] != self.y_query.shape[1]:
            raise ValueError(
                f"query set has {self.x_query.shape[1]} inputs but {self.y_query.shape[1]} targets"
            )
        for k, v in self.info.items():
            if v.shape[0] != b:
                raise ValueError(f"TaskBatch.info[{k!r}] has {v.shape[0]} rows, expected {b}")

    @property
    def num_tasks(self) -> int:
        return self.x_support.shape[0]

    @property
    def device(self) -> torch.device:
        return self.x_support.device

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TaskBatch:
        """Move every tensor; ``dtype`` converts floating tensors only (labels stay integer)."""

        def move(t: Tensor) -> Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return TaskBatch(
            **{f.name: move(getattr(self, f.name)) for f in fields(self) if f.name != "info"},
            info={k: move(v) for k, v in self.info.items()},
        )

    def __getitem__(self, index: int | slice | Tensor) -> TaskBatch:
        """Select tasks; an integer keeps a batch dimension of one."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return TaskBatch(
            **{f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "info"},
            info={k: v[index] for k, v in self.info.items()},
        )


class TaskDistribution(Protocol):
    """A distribution over tasks p(T) (MAML, Sec. 2.1) that samples batches on its device."""

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        """Draw ``num_tasks`` i.i.d. tasks using only ``generator`` for randomness."""
        ...
