"""N-way K-shot episodes drawn from a tensor of class images, shared by Omniglot and
miniImageNet (Vinyals et al. 2016, Sec. 4: the episode as the unit of meta-learning)."""

from __future__ import annotations

import torch
from torch import Tensor

from learntolearn.tasks import TaskBatch

__all__ = ["ClassImageTasks"]


class ClassImageTasks:
    """A :class:`~learntolearn.tasks.TaskDistribution` over the classes of :attr:`images`,
    uint8 ``[classes, examples, (channels,) H, W]`` on its device. A task draws ``n_way``
    distinct classes and, per class, ``k_shot + k_query`` distinct examples; labels are
    ``0..n_way-1`` in class-major order (support position ``i`` has label ``i // k_shot``).
    Inputs are float32 in ``[0, 1]``, ``[B, N·K, C, H, W]``."""

    images: Tensor
    n_way: int
    k_shot: int
    k_query: int

    def check_sizes(
        self, n_way: int, k_shot: int, k_query: int, classes: int, examples: int, what: str
    ) -> None:
        """A clear error for a task that these classes cannot provide."""
        for arg, value in (("n_way", n_way), ("k_shot", k_shot), ("k_query", k_query)):
            if value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value}")
        if n_way > classes:
            raise ValueError(f"n_way={n_way} exceeds the {classes} classes of {what}")
        if k_shot + k_query > examples:
            raise ValueError(
                f"k_shot + k_query = {k_shot + k_query} exceeds the {examples} examples per class"
                f" of {what}"
            )
        self.n_way, self.k_shot, self.k_query = n_way, k_shot, k_query

    @property
    def num_classes(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        """Draw ``num_tasks`` tasks in one vectorised pass.

        ``generator`` must live on :attr:`device` (``torch.Generator(device=tasks.device)``);
        the same generator state gives the same batch. ``info["classes"]`` is long
        ``[num_tasks, n_way]``: indices into the classes, in label order.
        """
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be positive, got {num_tasks}")
        if generator.device.type != self.device.type:
            raise ValueError(
                f"generator is on {generator.device} but the tasks are on {self.device}: "
                f"use torch.Generator(device={str(self.device)!r})"
            )
        b, n, k, q = num_tasks, self.n_way, self.k_shot, self.k_query
        per_class = self.images.shape[1]
        shape = self.images.shape[2:]
        shape = (1, *shape) if len(shape) == 2 else shape  # one channel
        draw = torch.rand(b, self.num_classes, generator=generator, device=self.device)
        classes = draw.argsort(dim=1)[:, :n]
        draw = torch.rand(b, n, per_class, generator=generator, device=self.device)
        drawings = draw.argsort(dim=2)[:, :, : k + q]
        # One index_select over [classes * examples] images: much faster than 2-d indexing.
        flat = (classes[:, :, None] * per_class + drawings).flatten()
        x = self.images.flatten(0, 1).index_select(0, flat).view(b, n, k + q, *shape)
        labels = torch.arange(n, device=self.device)
        return TaskBatch(
            x_support=x[:, :, :k].reshape(b, n * k, *shape).float().div_(255),
            y_support=labels.repeat_interleave(k).repeat(b, 1),
            x_query=x[:, :, k:].reshape(b, n * q, *shape).float().div_(255),
            y_query=labels.repeat_interleave(q).repeat(b, 1),
            info={"classes": classes},
        )
