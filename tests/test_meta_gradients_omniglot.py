"""MAML's meta-gradient on the classification networks, against central finite differences.

The sinusoid version (``test_meta_gradients.py``) covers an MLP; the networks of the Omniglot
experiments add batch normalisation (transductive or with support statistics), strided
convolutions, max-pooling and a cross-entropy loss, each of which must survive a second
derivative, with and without ``vmap``. Everything runs in float64 on tiny random tasks
(B = 2 tasks, 3-way, 2 shots, 2 queries per class) so that a full finite-difference gradient
costs a few seconds.

With ReLU and max-pooling the loss is only piecewise smooth; central differences with
ε = 1e-6 are exact to O(ε²) as long as no pre-activation crosses zero and no pooling window
changes its maximum within ±ε, which holds for continuous random inputs: the relative errors
measured are ~1e-9 on every path, against a tolerance of 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache, partial

import pytest
import torch
from torch import nn

from learntolearn.methods.anil import ANIL
from learntolearn.methods.inner_loop import inner_sgd
from learntolearn.methods.maml import MAML
from learntolearn.models.batchnorm import TaskBatchNorm
from learntolearn.models.networks import ConvNet, FCNet
from learntolearn.objective import Objective, Params, cross_entropy, init_params
from learntolearn.tasks import TaskBatch

from .gradcheck import finite_difference, flatten, rel_error

TOL = 1e-6
EPS = 1e-6
INNER_LR = 0.4  # MAML's Omniglot step size: large enough that the Hessian term matters
N_WAY, K_SHOT, Q_QUERY, NUM_TASKS = 3, 2, 2, 2

# name -> (network, image side). ConvNet(pool=True) needs 16 pixels to keep a 1x1 map after
# four 2x2 max-pools; the strided one reaches 1x1 from 8. Two channels (the cost of the
# differences grows with the parameter count) still exercise per-channel statistics. FCNet
# keeps the reference init but with a larger standard deviation: at the default 0.01, batch
# norm makes the loss so curved in the weights that the O(ε²) truncation error of the
# differences alone is ~1e-7.
MODELS: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "strided": (lambda: ConvNet(N_WAY, hidden=2, image_size=8), 8),
    "maxpool": (lambda: ConvNet(N_WAY, hidden=2, image_size=16, pool=True), 16),
    "fc": (lambda: FCNet(N_WAY, in_features=16, hidden=(6, 5), init_std=0.1), 4),
}

# (transductive, inner_steps). Every model runs the first mode; the second (batch norm with the
# support set's statistics, two inner steps: twice the finite-difference cost) runs on one
# network with 4-d feature maps and on the one with 2-d features, which is where ``stats_from``
# behaves differently. test_batched_and_unbatched_agree still covers the full product.
MODES = {"transductive-1step": (True, 1), "support-stats-2steps": (False, 2)}
CASES = [
    *((name, "transductive-1step") for name in MODELS),
    ("strided", "support-stats-2steps"),
    ("fc", "support-stats-2steps"),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """These tensors are tiny: intra-op threads only fight over the cores (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_tasks(image_size: int, seed: int = 1) -> TaskBatch:
    """Tasks of Gaussian images, every class ``K_SHOT`` (``Q_QUERY``) times, shuffled."""
    g = torch.Generator().manual_seed(seed)

    def split(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = N_WAY * per_class
        x = torch.randn(NUM_TASKS, n, 1, image_size, image_size, generator=g, dtype=torch.float64)
        labels = torch.arange(N_WAY).repeat_interleave(per_class)
        y = torch.stack([labels[torch.randperm(n, generator=g)] for _ in range(NUM_TASKS)])
        return x, y

    (xs, ys), (xq, yq) = split(K_SHOT), split(Q_QUERY)
    return TaskBatch(xs, ys, xq, yq)


@cache
def problem(name: str) -> tuple[nn.Module, Params, TaskBatch]:
    """A float64 network, its parameters θ (leaves, never modified) and a batch of tasks."""
    make, image_size = MODELS[name]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = make().double()
    return model, init_params(model), random_tasks(image_size)


def meta_gradient(algo, params: Params, batch: TaskBatch) -> torch.Tensor:
    loss = algo.loss(params, batch)
    return flatten(dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True)))


HEAD = ("head.weight", "head.bias")  # what ANIL adapts


@cache
def reference_gradient(
    name: str, first_order: bool, transductive: bool, steps: int, head_only: bool = False
):
    """The finite-difference meta-gradient (shared by the batched and unbatched tests).

    Second order: differences of the (unbatched) MAML loss itself. First order: the mean over
    tasks of the differences of the query loss at the adapted θ' (∂θ'/∂θ taken as I), the
    support set being the query's normalisation context when non-transductive. ``head_only``:
    ANIL, whose inner loop adapts the head alone.
    """
    model, params, batch = problem(name)
    objective = Objective(model, cross_entropy, transductive=transductive)
    only = HEAD if head_only else None
    if not first_order:
        algo = MAML(objective, INNER_LR, steps, batched=False, adapted=only)
        return finite_difference(lambda p: algo.loss(p, batch), params, EPS)
    expected = []
    for i in range(batch.num_tasks):
        xs, ys = batch.x_support[i], batch.y_support[i]
        xq, yq = batch.x_query[i], batch.y_query[i]
        adapted = inner_sgd(
            params,
            partial(objective.single, x=xs, y=ys),
            steps=steps,
            lr=INNER_LR,
            adapted=only,
            differentiable=False,
        )
        adapted = {k: v.detach() for k, v in adapted.items()}
        query_loss = partial(objective.single, x=xq, y=yq, context=None if transductive else xs)
        expected.append(finite_difference(query_loss, adapted, EPS))
    return torch.stack(expected).mean(0)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_meta_gradient_matches_finite_differences(name, mode, first_order, batched):
    transductive, steps = MODES[mode]
    model, params, batch = problem(name)
    objective = Objective(model, cross_entropy, transductive=transductive)
    algo = MAML(objective, INNER_LR, steps, first_order=first_order, batched=batched)
    fd = reference_gradient(name, first_order, transductive, steps)
    assert rel_error(meta_gradient(algo, params, batch), fd) < TOL


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_anil_meta_gradient_matches_finite_differences(name, mode, first_order, batched):
    """ANIL (Raghu et al. 2020): the inner loop adapts the head; the body's meta-gradient flows
    through the query features and, at second order, through the head's inner update."""
    transductive, steps = MODES[mode]
    model, params, batch = problem(name)
    objective = Objective(model, cross_entropy, transductive=transductive)
    # batched: ANIL's own path, the body's features computed once (anil.ANIL.loss)
    algo = ANIL(objective, INNER_LR, steps, first_order, batched=batched)
    assert algo.adapted == HEAD
    fd = reference_gradient(name, first_order, transductive, steps, head_only=True)
    assert rel_error(meta_gradient(algo, params, batch), fd) < TOL
    # and it is not MAML's
    assert rel_error(fd, reference_gradient(name, first_order, transductive, steps)) > 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_first_order_differs_from_second_order(name):
    """The Hessian term is large here, so the checks above can tell the two orders apart."""
    model, params, batch = problem(name)
    objective = Objective(model, cross_entropy)
    exact = meta_gradient(MAML(objective, INNER_LR, 1), params, batch)
    first = meta_gradient(MAML(objective, INNER_LR, 1, first_order=True), params, batch)
    assert rel_error(first, exact) > 0.1


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("transductive", [True, False], ids=["transductive", "support-stats"])
@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
@pytest.mark.parametrize("name", MODELS)
def test_batched_and_unbatched_agree(name, first_order, transductive, steps):
    model, params, batch = problem(name)
    objective = Objective(model, cross_entropy, transductive=transductive)
    a = MAML(objective, INNER_LR, steps, first_order=first_order, batched=True)
    b = MAML(objective, INNER_LR, steps, first_order=first_order, batched=False)
    assert torch.allclose(a.loss(params, batch), b.loss(params, batch), rtol=1e-12, atol=0)
    assert rel_error(meta_gradient(a, params, batch), meta_gradient(b, params, batch)) < 1e-12


@pytest.mark.parametrize("name", MODELS)
def test_transductive_flag_changes_query_not_support(name):
    """Support losses (hence the adapted θ') are the same in both modes; query losses are not."""
    model, params, batch = problem(name)
    trans = Objective(model, cross_entropy, transductive=True)
    inductive = Objective(model, cross_entropy, transductive=False)
    xs, ys = batch.x_support[0], batch.y_support[0]
    support = trans.single(params, xs, ys)
    # The support set normalised by its own statistics, with or without being its own context.
    assert torch.allclose(inductive.single(params, xs, ys), support, rtol=1e-12, atol=0)
    assert torch.allclose(inductive.single(params, xs, ys, xs), support, rtol=1e-12, atol=0)
    query_t = MAML(trans, INNER_LR, 1).loss(params, batch).detach()
    query_i = MAML(inductive, INNER_LR, 1).loss(params, batch).detach()
    assert not torch.allclose(query_t, query_i, rtol=1e-3)


@pytest.mark.parametrize("name", MODELS)
def test_support_statistics_make_queries_independent(name):
    """Non-transductive: a query's prediction does not depend on the other queries; it does
    under transductive batch norm."""
    model, params, batch = problem(name)
    xs, xq = batch.x_support[0], batch.x_query[0]
    trans = Objective(model, cross_entropy, transductive=True)
    inductive = Objective(model, cross_entropy, transductive=False)
    with torch.no_grad():
        alone = inductive.predict_single(params, xq[:1], xs)
        together = inductive.predict_single(params, xq, xs)[:1]
        assert torch.allclose(alone, together, rtol=1e-12, atol=1e-14)
        # (two queries: batch norm of a single example is degenerate, all zeros)
        pair = trans.predict_single(params, xq[:2])
        assert not torch.allclose(pair, trans.predict_single(params, xq)[:2], rtol=1e-3)


@pytest.mark.parametrize("shape", [(10, 4), (10, 4, 3, 5)], ids=["features", "feature-maps"])
@pytest.mark.parametrize("stats_from", [None, 4])
def test_batch_norm_statistics(shape, stats_from):
    """TaskBatchNorm against PyTorch's batch norm given the statistics of the chosen rows."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 1
    norm = TaskBatchNorm(shape[1]).double()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(shape[1], generator=g, dtype=torch.float64))
        norm.bias.copy_(torch.randn(shape[1], generator=g, dtype=torch.float64))
    ref = x if stats_from is None else x[:stats_from]
    dims = [0, *range(2, x.dim())]
    mean, var = ref.mean(dim=dims), ref.var(dim=dims, unbiased=False)
    expected = torch.nn.functional.batch_norm(
        x, mean, var, norm.weight, norm.bias, training=False, eps=norm.eps
    )
    out = norm(x, stats_from)
    assert torch.allclose(out, expected, rtol=1e-12, atol=1e-12)
    if stats_from is None:  # plain training-mode batch norm
        plain = torch.nn.functional.batch_norm(
            x, None, None, norm.weight, norm.bias, training=True, eps=norm.eps
        )
        assert torch.allclose(out, plain, rtol=1e-12, atol=1e-12)
    else:  # rows after stats_from do not move the statistics
        moved = x.clone()
        moved[stats_from:] += 5.0
        assert torch.allclose(norm(moved, stats_from)[:stats_from], out[:stats_from])


@pytest.mark.parametrize(
    ("batched", "steps"),
    [(True, 1), (False, 1), (True, 2), (False, 2)],
    ids=["batched-1step", "unbatched-1step", "batched-2steps", "unbatched-2steps"],
)
def test_maml_loss_under_no_grad(batched, steps):
    """A validation meta-loss under ``torch.no_grad()`` equals the differentiable one (the inner
    loop re-enables grad for its own gradients and keeps no graph)."""
    model, params, batch = problem("fc")
    algo = MAML(Objective(model, cross_entropy), INNER_LR, steps, batched=batched)
    expected = algo.loss(params, batch).detach()
    with torch.no_grad():
        assert torch.allclose(algo.loss(params, batch), expected, rtol=1e-12, atol=0)
