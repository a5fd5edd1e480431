"""What SNAIL's causal attention reads: Mishra et al. (ICLR 2018), Sec. 3.1 and Fig. 2.

Each attention block lets the step being answered look back at every step of the episode with
softmax weights (:meth:`~learntolearn.methods.snail.SNAILCore.attention`). Read from a trained
network on one test task, the weights of a query's step show whether it attends to the support
examples of its own class: a nearest-neighbour lookup learned end to end.
"""

from __future__ import annotations

from typing import Any

import torch

from learntolearn.methods.metric import embed
from learntolearn.methods.snail import Snail
from learntolearn.objective import Params
from learntolearn.tasks import TaskBatch

__all__ = ["query_attention"]


def query_attention(
    method: Snail, params: Params, batch: TaskBatch, query: int = 0, mode: str = "non-transductive"
) -> dict[str, Any]:
    """For query ``query`` of the one task in ``batch``, read after its support set as SNAIL
    reads it: in each attention block, the weights of the query's step on the support steps (in
    the order read) and on itself (``blocks``, one row per block), the support steps' classes in
    that order (``support_classes``) and the query's class (``query_class``)."""
    model = method.objective.model
    model.load_state_dict(params, strict=False)  # the core's own inspection uses its modules
    with torch.no_grad():
        steps = method.sequence(batch, *embed(method.objective, params, batch, mode))
        sequence = torch.cat([steps.support[:1], steps.queries[:1, query : query + 1]], 1)
        rows = [p[0, -1] for p in model.comparator.attention(sequence)]
    return {
        "query": query,
        "query_class": int(batch.y_query[0, query]),
        "support_classes": [int(c) for c in steps.labels[0]],
        "blocks": [row.cpu().tolist() for row in rows],
    }
