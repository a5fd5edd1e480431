"""Rapid learning or feature reuse? The analyses of Raghu et al. (ICLR 2020).

* **Representation similarity** of every layer before and after the inner loop (their Sec. 3,
  Fig. 2, with CCA; here linear CKA, Kornblith et al. 2019, Eq. 5, which their appendix also
  reports). A similarity near 1 means the inner loop leaves the layer's representation as it
  was: the features are *reused*, not rapidly learned.
* **NIL** (no inner loop, their Sec. 5): drop the head and classify a query by the support
  labels weighted with a softmax over the cosine similarities of penultimate features, as in
  Matching Networks (Vinyals et al. 2016).

The third analysis, adapting the head alone at test time (their Table 1's frozen body), is the
``adapted`` argument of the shared fine-tuning in :mod:`learntolearn.methods.finetuning`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from learntolearn.objective import Objective, Params, expand_params
from learntolearn.tasks import TaskBatch

__all__ = ["layer_similarity", "linear_cka", "nil_accuracy"]


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Linear CKA of two representations of the same examples, ``[..., n, p]`` and ``[..., n, q]``.

    CKA(X, Y) = ⟨HKH, HLH⟩ / (‖HKH‖ ‖HLH‖) with the Gram matrices K = XXᵀ, L = YYᵀ and the
    centring matrix H (Kornblith et al. 2019): 1 for representations equal up to an orthogonal
    transformation and isotropic scaling, near 0 for unrelated ones. Computed in float64.
    """
    x, y = x.double(), y.double()

    def centred_gram(z: Tensor) -> Tensor:
        z = z - z.mean(-2, keepdim=True)
        return z @ z.transpose(-1, -2)

    k, l_ = centred_gram(x), centred_gram(y)
    hsic = (k * l_).sum((-1, -2))
    return hsic / ((k * k).sum((-1, -2)) * (l_ * l_).sum((-1, -2))).sqrt()


def layer_similarity(
    objective: Objective, before: Params, after: Params, batch: TaskBatch
) -> list[Tensor]:
    """CKA per task ``[B]`` for every layer (the network's ``layers=True`` outputs, in order),
    between the query representations under ``before`` (shared) and ``after`` (per task)."""
    theta = expand_params(before, batch.num_tasks)
    with torch.no_grad():
        old = objective.predict(theta, batch.x_query, batch.x_support, layers=True)
        new = objective.predict(after, batch.x_query, batch.x_support, layers=True)
    return [linear_cka(a.flatten(2), b.flatten(2)) for a, b in zip(old, new, strict=True)]


def nil_accuracy(objective: Objective, params: Params, batch: TaskBatch) -> Tensor:
    """Accuracy per task ``[B]`` of NIL: no adaptation; a query's class scores are the support
    labels weighted by softmax_s cos(f(query), f(support_s)) over the penultimate features f."""
    theta = expand_params(params, batch.num_tasks)
    with torch.no_grad():
        support = objective.predict(theta, batch.x_support, layers=True)[-2]
        query = objective.predict(theta, batch.x_query, batch.x_support, layers=True)[-2]
        cosine = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).transpose(1, 2)
        n_way = int(batch.y_support.max()) + 1
        scores = cosine.softmax(-1) @ F.one_hot(batch.y_support, n_way).to(cosine.dtype)
        return (scores.argmax(-1) == batch.y_query).float().mean(-1)
