"""A third batch-norm mode at test time: statistics of the training *population*.

The book scores every metric-based method in two modes (``Objective.in_mode``): each set
normalised by its own statistics (*transductive*), or the query set by its task's support set
(*non-transductive*). The reference code of Prototypical networks (Snell et al. 2017) does
neither: it trains PyTorch's ``BatchNorm2d`` in training mode and tests in evaluation mode, so
every test image is normalised with the running averages of the training batches' statistics,
statistics of the training population that no test image contributes to. A prediction then
depends on its query and the support set alone, like the non-transductive mode, but its
statistics come from many images instead of the N·K of one support set.

The networks here never track running statistics. The same normalisation comes from putting a
fixed *reference* batch of training images first and normalising everything with its statistics
(``stats_from``), layer by layer: each layer's mean and variance are those of the reference
images' activations under the trained parameters, the "precise" population statistics of Wu &
Johnson (2021) rather than a running average along training.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import functional_call

from learntolearn.methods.metric import MetricLearner
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch, TaskDistribution

__all__ = ["population_embed", "population_scores", "reference_images"]


def reference_images(tasks: TaskDistribution, size: int, seed: int) -> Tensor:
    """``size`` training images ``[size, ...]``: every image of training tasks drawn with
    ``seed`` (support and query sets alike), as many tasks as it takes."""
    generator = torch.Generator().manual_seed(seed)
    parts, count = [], 0
    while count < size:
        batch = tasks.sample(1, generator)
        for x in (batch.x_support[0], batch.x_query[0]):
            parts.append(x)
            count += x.shape[0]
    return torch.cat(parts)[:size]


def population_embed(
    model: torch.nn.Module, params: Params, reference: Tensor, x: Tensor
) -> Tensor:
    """The embeddings of images ``x [n, ...]``, every batch-norm layer normalising with the
    statistics of ``reference``'s activations at that layer."""
    r = reference.shape[0]
    inputs = (torch.cat([reference, x.to(reference.dtype)]),)
    return functional_call(model, params, inputs, {"stats_from": r})[r:]


def population_scores(
    method: MetricLearner, params: Params, batch: TaskBatch, reference: Tensor
) -> Tensor:
    """``[B, Q, N]``: the method's scores with both sets embedded with the population
    statistics (one pass for the whole batch: no image's embedding depends on another's)."""
    xs, xq = batch.x_support, batch.x_query
    images = torch.cat([xs.flatten(0, 1), xq.flatten(0, 1)])
    with torch.no_grad():
        out = population_embed(method.objective.model, params, reference, images)
        n = xs.shape[0] * xs.shape[1]
        support = out[:n].unflatten(0, xs.shape[:2])
        query = out[n:].unflatten(0, xq.shape[:2])
        return method.compare(params, batch, support, query, "non-transductive")
