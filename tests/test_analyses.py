"""The analyses of the Reptile and ANIL chapters: update directions (Nichol et al. 2018, Sec. 5),
linear CKA, NIL and layer similarity (Raghu et al. 2020)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learntolearn.analysis.feature_reuse import layer_similarity, linear_cka, nil_accuracy
from learntolearn.analysis.update_directions import TAYLOR, fit_coefficients, update_directions
from learntolearn.data.sinusoid import SinusoidTasks
from learntolearn.methods.maml import MAML
from learntolearn.models.networks import MLP, ConvNet
from learntolearn.objective import Objective, cross_entropy, expand_params, init_params, mse
from learntolearn.tasks import TaskBatch

from .gradcheck import finite_difference, flatten, rel_error


@pytest.fixture(scope="module")
def sine():
    torch.manual_seed(0)
    model = MLP((1, 6, 6, 1), init_std=0.5).double()
    batch = SinusoidTasks(5, 5).sample(4, torch.Generator().manual_seed(2)).to("cpu", torch.float64)
    return Objective(model, mse), init_params(model), batch


def grad_of(loss, params):
    return flatten(dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True)))


def test_update_directions_are_the_methods_gradients(sine):
    objective, params, batch = sine
    lr = 0.05
    d = update_directions(objective, params, batch, lr)
    exact = grad_of(MAML(objective, lr, 1).loss(params, batch), params)
    first = grad_of(MAML(objective, lr, 1, first_order=True).loss(params, batch), params)
    support = objective.batched(expand_params(params, 4), batch.x_support, batch.y_support)
    assert rel_error(d["MAML"], exact) < 1e-12
    assert rel_error(d["first-order MAML"], first) < 1e-12
    assert rel_error(d["pretraining"], grad_of(support.mean(), params)) < 1e-12
    assert rel_error(d["Reptile"], d["pretraining"] + first) < 1e-12


def test_avg_grad_inner_matches_finite_differences(sine):
    """AvgGradInner = ½ ∇_Φ mean_i (ḡ_A · ḡ_B), the product rule applied by autograd."""
    objective, params, batch = sine

    def half_inner(p):
        with torch.enable_grad():
            p = {k: v.detach().requires_grad_() for k, v in p.items()}
            per_task = expand_params(p, batch.num_tasks)
            ga = torch.autograd.grad(
                objective.batched(per_task, batch.x_support, batch.y_support).sum(),
                list(per_task.values()),
            )
            gb = torch.autograd.grad(
                objective.batched(per_task, batch.x_query, batch.y_query).sum(),
                list(per_task.values()),
            )
        return 0.5 * sum((a * b).sum() for a, b in zip(ga, gb, strict=True)) / batch.num_tasks

    d = update_directions(objective, params, batch, 0.01)
    assert rel_error(d["AvgGradInner"], finite_difference(half_inner, params)) < 1e-6


def test_taylor_predictions_are_second_order_accurate(sine):
    """The Taylor predictions miss the exact directions by O(α²): halving α quarters the error."""
    objective, params, batch = sine

    def error(lr, method):
        d = update_directions(objective, params, batch, lr)
        return rel_error(d[f"taylor:{method}"], d[method])

    for method in ("first-order MAML", "Reptile", "MAML"):
        ratio = error(1e-3, method) / error(2e-3, method)
        assert 0.2 < ratio < 0.3, (method, ratio)


def test_fit_coefficients_recovers_a_combination():
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(2))
    for name, (ca, cb) in TAYLOR.items():
        fit = fit_coefficients(ca * a + 0.1 * cb * b, a, b)
        torch.testing.assert_close(fit[:2], torch.tensor([ca, 0.1 * cb], dtype=torch.float64))
        assert fit[2] < 1e-12, name


def test_linear_cka_invariances():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 7, generator=g)
    q, _ = torch.linalg.qr(torch.randn(7, 7, generator=g))
    torch.testing.assert_close(linear_cka(x, 3.0 * x @ q + 1.0), torch.ones(3, dtype=torch.float64))
    unrelated = linear_cka(x, torch.randn(3, 20, 7, generator=g))
    assert (unrelated < 0.8).all() and (unrelated > 0).all()
    # the definition on a small case, ⟨Kc, Lc⟩ / (‖Kc‖‖Lc‖) with explicit centring
    y = torch.randn(20, 4, generator=g, dtype=torch.float64)
    h = torch.eye(20, dtype=torch.float64) - 1 / 20
    k, l_ = h @ x[0].double() @ x[0].double().T @ h, h @ y @ y.T @ h
    torch.testing.assert_close(linear_cka(x[0], y), (k * l_).sum() / (k.norm() * l_.norm()))


class _Identity(nn.Module):
    """Features are the inputs; the head is a fixed linear map (only the features matter)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)

    def forward(self, x, stats_from=None, layers=False):
        return (x, self.head(x)) if layers else self.head(x)


def test_nil_classifies_by_cosine_similarity_to_the_support_set():
    g = torch.Generator().manual_seed(0)
    prototypes = torch.randn(3, 4, generator=g)
    labels = torch.arange(3)
    xs = prototypes.repeat(2, 1, 1)  # 2 tasks, one support example per class
    xq = 2.5 * prototypes[[2, 0, 1]].repeat(2, 1, 1)  # same directions: cosine 1
    batch = TaskBatch(xs, labels.repeat(2, 1), xq, labels[[2, 0, 1]].repeat(2, 1))
    model = _Identity()
    acc = nil_accuracy(Objective(model, cross_entropy), init_params(model), batch)
    assert acc.tolist() == [1.0, 1.0]
    wrong = TaskBatch(xs, labels.repeat(2, 1), xq, labels.repeat(2, 1))
    assert nil_accuracy(Objective(model, cross_entropy), init_params(model), wrong).max() < 1


def test_layer_similarity_is_one_without_adaptation_and_sees_every_layer():
    torch.manual_seed(0)
    model = ConvNet(3, hidden=4, image_size=8)
    params = init_params(model)
    g = torch.Generator().manual_seed(0)
    batch = TaskBatch(
        torch.randn(2, 6, 1, 8, 8, generator=g),
        torch.arange(3).repeat(2, 2),
        torch.randn(2, 6, 1, 8, 8, generator=g),
        torch.arange(3).repeat(2, 2),
    )
    same = layer_similarity(
        Objective(model, cross_entropy), params, expand_params(params, 2), batch
    )
    assert len(same) == 6  # four blocks, the features, the logits
    for s in same:
        torch.testing.assert_close(s, torch.ones(2, dtype=torch.float64))
    moved = {k: v + (0.5 if k == "head.weight" else 0.0) for k, v in params.items()}
    changed = layer_similarity(
        Objective(model, cross_entropy), params, expand_params(moved, 2), batch
    )
    assert all(torch.allclose(s, torch.ones(2, dtype=torch.float64)) for s in changed[:5])
    assert (changed[5] < 0.999).all()


def test_precision_curvature_of_linear_regression():
    """For least squares on one input, the support-loss Hessian is 2·[[E x², E x], [E x, 1]]:
    power iteration finds its top eigenvalue, times the inner step size."""
    from learntolearn.analysis.precision import curvature

    torch.manual_seed(0)
    model = MLP((1, 1))
    maml = MAML(Objective(model, mse), inner_lr=0.1)
    x = torch.randn(1, 8, 1)
    batch = TaskBatch(x, 3 * x, x, 3 * x)
    m2, m1 = (x**2).mean().item(), x.mean().item()
    top = torch.linalg.eigvalsh(2 * torch.tensor([[m2, m1], [m1, 1.0]], dtype=torch.float64))[-1]
    found = curvature(maml, init_params(model), batch, torch.Generator().manual_seed(1))
    assert found[0] == pytest.approx(0.1 * top.item(), rel=1e-6)


def test_precision_errors_are_measured_not_assumed():
    """float32 is close to float64 on a well-conditioned sinusoid step, and the float64
    meta-gradient moves in proportion to a small perturbation of θ."""
    from learntolearn.analysis.precision import (
        float32_error,
        relative_error,
        sensitivity,
        task_noise,
    )

    torch.manual_seed(0)
    model = MLP((1, 40, 40, 1))
    maml = MAML(Objective(model, mse), inner_lr=0.01)
    batch = SinusoidTasks(10, 10).sample(4, torch.Generator().manual_seed(0))
    params = init_params(model)
    error, per_task = float32_error(maml, params, batch)
    assert 0 < error < 1e-4 and len(per_task) == 4 and 0 < max(per_task) < 1e-4
    small, _ = sensitivity(maml, params, batch, 1e-7, torch.Generator().manual_seed(2))
    large, tasks = sensitivity(maml, params, batch, 1e-4, torch.Generator().manual_seed(2))
    assert 0 < small < large and large / small == pytest.approx(1e3, rel=0.1)
    assert all(t > 0 for t in tasks)
    other = SinusoidTasks(10, 10).sample(4, torch.Generator().manual_seed(1))
    assert task_noise(maml, params, batch, other) > 100 * error
    assert task_noise(maml, params, batch, batch) == 0
    a = [torch.ones(3)]
    assert relative_error(a, a) == 0 and relative_error([torch.zeros(3)], a) == 1


def test_population_statistics_are_the_reference_batchs_at_every_layer():
    from learntolearn.analysis.population_batchnorm import (
        population_embed,
        population_scores,
        reference_images,
    )
    from learntolearn.methods.matching import Matching

    from .test_metric import build

    method, params, batch = build("matching")
    model, xs, xq = method.objective.model, batch.x_support[0], batch.x_query[0]
    # with the support set as the reference: the non-transductive mode's query embeddings
    support_mode = method.objective.in_mode("non-transductive")
    expected = support_mode.predict_single(params, xq, xs)
    assert torch.allclose(population_embed(model, params, xs, xq), expected)
    # one image at a time or all together: no image's embedding depends on another's
    reference = torch.cat([xs, xq.flip(0)])
    together = population_embed(model, params, reference, xq)
    alone = torch.cat([population_embed(model, params, reference, x[None]) for x in xq])
    assert torch.allclose(together, alone)
    # and the scores of a task are the method's comparison of those embeddings
    scores = population_scores(method, params, batch, reference)
    support = population_embed(model, params, reference, xs)
    assert isinstance(method, Matching)
    first = method.compare(params, batch[:1], support[None], together[None], "non-transductive")
    assert scores.shape == (batch.num_tasks, xq.shape[0], 3)
    assert torch.allclose(scores[:1], first)

    class Draws:  # a task distribution of 2 support and 3 query images, seeded
        def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
            x = torch.rand(num_tasks, 5, 1, 4, 4, generator=generator)
            y = torch.zeros(num_tasks, 5, dtype=torch.long)
            return TaskBatch(x[:, :2], y[:, :2], x[:, 2:], y[:, 2:])

    first_images = reference_images(Draws(), 12, seed=3)
    assert first_images.shape == (12, 1, 4, 4)
    assert torch.equal(first_images, reference_images(Draws(), 12, seed=3))
    assert not torch.equal(first_images, reference_images(Draws(), 12, seed=4))


def test_population_analysis_applies_to_embedding_comparisons_only():
    from learntolearn.catalogue import experiment
    from learntolearn.fewshot.stored_analyses import ANALYSES

    applies = ANALYSES["population_bn"].applies
    for name in ("protonet-5w1s", "matching-5w1s"):
        assert applies(experiment(f"omniglot/{name}", "cpu")) is None
    for name in ("relation-5w1s", "siamese-5w1s", "maml-5w1s"):
        assert "Prototypical, Matching" in str(applies(experiment(f"omniglot/{name}", "cpu")))


@pytest.mark.usefixtures("real_env")
def test_split_tasks_are_drawn_from_their_own_characters():
    from learntolearn.catalogue import experiment
    from learntolearn.fewshot.stored_analyses import ANALYSES
    from learntolearn.fewshot.task_families import FAMILIES, omniglot_split_tests

    cfg = experiment("omniglot/protonet-5w1s", "smoke")
    family = FAMILIES["omniglot"]
    assert family.validation_sets is not None

    def first(sets):
        return next(iter(sets[0].tasks()))

    def images(b):
        return {tuple(x.flatten().tolist()) for x in b.x_support.flatten(0, 1)}

    val, test = first(omniglot_split_tests(cfg, "val")), first(family.test_sets(cfg))
    assert torch.equal(val.x_support, first(family.validation_sets(cfg)).x_support)
    train = first(omniglot_split_tests(cfg, "train"))
    assert not images(train) & images(test) and not images(train) & images(val)
    applies = ANALYSES["splits"].applies
    assert applies(cfg) is None and applies(experiment("omniglot/maml-5w1s", "cpu")) is None
    for name in ("omniglot/protonet-5w1s-trainval", "sinusoid/maml-k10"):
        assert "Vinyals training characters" in str(applies(experiment(name, "cpu")))
