"""MAML's meta-gradient against central finite differences in float64, on every path."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from learntolearn.data.sinusoid import SinusoidTasks
from learntolearn.methods.inner_loop import inner_sgd
from learntolearn.methods.maml import MAML
from learntolearn.methods.pretraining import JointTraining
from learntolearn.models.networks import MLP
from learntolearn.objective import Objective, init_params, mse

from .gradcheck import finite_difference, flatten, rel_error

TOL = 1e-7


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = MLP((1, 6, 6, 1), init_std=0.6).double()
    batch = SinusoidTasks(4, 5).sample(3, torch.Generator().manual_seed(1)).to("cpu", torch.float64)
    return Objective(model, mse), init_params(model), batch


def autograd_meta_gradient(algo, params, batch):
    return flatten(
        dict(
            zip(
                params,
                torch.autograd.grad(algo.loss(params, batch), list(params.values())),
                strict=True,
            )
        )
    )


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_matches_finite_differences(problem, batched, steps):
    objective, params, batch = problem
    algo = MAML(objective, inner_lr=0.1, inner_steps=steps, batched=batched)
    fd = finite_difference(lambda p: algo.loss(p, batch), params)
    assert rel_error(autograd_meta_gradient(algo, params, batch), fd) < TOL


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("steps", [1, 3])
def test_first_order_matches_finite_differences(problem, batched, steps):
    """FOMAML's gradient is ∇L_query evaluated at the adapted θ' (∂θ'/∂θ taken as I)."""
    objective, params, batch = problem
    algo = MAML(objective, inner_lr=0.1, inner_steps=steps, first_order=True, batched=batched)
    expected = []
    for i in range(batch.num_tasks):
        task = batch[i]
        xs, ys, xq, yq = task.x_support[0], task.y_support[0], task.x_query[0], task.y_query[0]
        adapted = inner_sgd(
            params,
            partial(objective.single, x=xs, y=ys),
            steps=steps,
            lr=0.1,
            differentiable=False,
        )
        adapted = {k: v.detach() for k, v in adapted.items()}
        expected.append(finite_difference(partial(objective.single, x=xq, y=yq), adapted))
    fd = torch.stack(expected).mean(0)
    assert rel_error(autograd_meta_gradient(algo, params, batch), fd) < TOL


def test_first_order_differs_from_second_order(problem):
    """The Hessian term is not zero here, so the check above can tell the two apart."""
    objective, params, batch = problem
    exact = autograd_meta_gradient(MAML(objective, 0.1, 2), params, batch)
    first = autograd_meta_gradient(MAML(objective, 0.1, 2, first_order=True), params, batch)
    assert rel_error(first, exact) > 1e-3


@pytest.mark.parametrize("first_order", [False, True])
def test_batched_and_unbatched_agree(problem, first_order):
    objective, params, batch = problem
    a = MAML(objective, 0.1, 2, first_order=first_order, batched=True)
    b = MAML(objective, 0.1, 2, first_order=first_order, batched=False)
    assert torch.allclose(a.loss(params, batch), b.loss(params, batch), rtol=1e-12)
    assert (
        rel_error(
            autograd_meta_gradient(a, params, batch), autograd_meta_gradient(b, params, batch)
        )
        < 1e-12
    )


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_joint_training_gradient(problem, batched):
    objective, params, batch = problem
    algo = JointTraining(objective, batched=batched)
    fd = finite_difference(lambda p: algo.loss(p, batch), params)
    assert rel_error(autograd_meta_gradient(algo, params, batch), fd) < TOL


def test_zero_inner_steps_is_plain_loss(problem):
    objective, params, batch = problem
    maml = MAML(objective, 0.1, 1)
    no_adapt = objective.batched(
        {k: v.expand(batch.num_tasks, *v.shape) for k, v in params.items()},
        batch.x_query,
        batch.y_query,
    ).mean()
    assert not torch.allclose(maml.loss(params, batch), no_adapt)
    assert (
        inner_sgd(
            params,
            lambda p: objective.single(p, batch.x_support[0], batch.y_support[0]),
            steps=0,
            lr=0.1,
        )["0.weight"]
        is params["0.weight"]
    )
