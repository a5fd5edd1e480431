"""Random affine distortions of training images (Koch, Zemel & Salakhutdinov 2015, Sec. 3.2).

Each training image gets its own transformation T = (θ, ρ_x, ρ_y, s_x, s_y, t_x, t_y): a
rotation θ ∈ [−10°, 10°], shears ρ ∈ [−0.3, 0.3], scales s ∈ [0.8, 1.2] and translations
t ∈ [−2, 2] pixels of the 105-pixel originals (the same fraction of the image here), each
component present with probability 1/2. Drawn from the sampler's generator, so a training run
stays deterministic; test tasks are never distorted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from learntolearn.tasks import TaskBatch, TaskDistribution

__all__ = ["AffineDistortions", "distort"]

_SOURCE_PIXELS = 105  # Koch's translations are in pixels of the original images


def distort(images: Tensor, generator: torch.Generator) -> Tensor:
    """``images [..., 1, H, W]`` (white background) each under its own random affine map."""
    flat = images.reshape(-1, *images.shape[-3:])
    n, dev = flat.shape[0], flat.device

    def uniform(low: float, high: float, neutral: float) -> Tensor:
        value = low + (high - low) * torch.rand(n, generator=generator, device=dev)
        keep = torch.rand(n, generator=generator, device=dev) < 0.5
        return torch.where(keep, value, torch.full_like(value, neutral))

    theta = uniform(-10.0, 10.0, 0.0) * (math.pi / 180)
    shear_x, shear_y = uniform(-0.3, 0.3, 0.0), uniform(-0.3, 0.3, 0.0)
    scale_x, scale_y = uniform(0.8, 1.2, 1.0), uniform(0.8, 1.2, 1.0)
    shift = 2.0 / (_SOURCE_PIXELS / 2)  # 2 pixels in normalised coordinates [-1, 1]
    t_x, t_y = uniform(-shift, shift, 0.0), uniform(-shift, shift, 0.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    one = torch.ones_like(cos)
    shear = torch.stack([torch.stack([one, shear_x], -1), torch.stack([shear_y, one], -1)], -2)
    scale = torch.diag_embed(torch.stack([scale_x, scale_y], -1))
    matrix = torch.cat([rotation @ shear @ scale, torch.stack([t_x, t_y], -1)[..., None]], -1)
    grid = F.affine_grid(matrix.to(flat.dtype), list(flat.shape), align_corners=False)
    ink = F.grid_sample(1 - flat, grid, align_corners=False)  # outside the image: no ink
    return (1 - ink).view_as(images)


@dataclass(frozen=True)
class AffineDistortions:
    """A :class:`~learntolearn.tasks.TaskDistribution` whose tasks' images are distorted."""

    tasks: TaskDistribution

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        batch = self.tasks.sample(num_tasks, generator)
        return replace(
            batch,
            x_support=distort(batch.x_support, generator),
            x_query=distort(batch.x_query, generator),
        )
