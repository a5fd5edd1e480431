"""Learned optimizers (chapter 7): preprocessing, the update-rule seam, meta-gradients against
finite differences in float64, the hand-designed baselines, bad input, and a resumable run."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import pytest
import torch
from torch import nn

from learntolearn.catalogue import run
from learntolearn.catalogue.learned_optimizers import optimizer_experiment
from learntolearn.data.optimizees import Problems, Quadratics
from learntolearn.learned_optimizers import runs as optimizer_runs
from learntolearn.methods.inner_loop import LOSS, NAG, SGD, Adam, RMSprop, adapt
from learntolearn.methods.learned_optimizer import (
    LSTMOptimizer,
    NonFiniteLossError,
    preprocess,
    unroll,
)
from learntolearn.methods.meta_learner_lstm import MetaLearnerLSTM, MetaLearnerRule
from learntolearn.models.optimizers import (
    CoordinatewiseLSTM,
    LearnerAndMetaLearner,
    MetaLearnerCell,
)
from learntolearn.objective import Objective, cross_entropy, init_params
from learntolearn.tasks import TaskBatch
from tests.gradcheck import finite_difference, flatten, rel_error


def test_preprocessing_by_hand_at_and_around_the_branch_point() -> None:
    p = 10.0
    edge = math.exp(-p)
    x = torch.tensor(
        [1.0, -math.e, edge, -edge, 0.5 * edge, -0.25 * edge, 0.0], dtype=torch.float64
    )
    got = preprocess(x, p)
    want = torch.tensor(
        [
            [0.0, 1.0],  # log(1)/10, sign
            [0.1, -1.0],  # log(e)/10
            [-1.0, 1.0],  # |x| = e^-p: the log branch, log(e^-10)/10 = -1
            [-1.0, -1.0],
            [-1.0, 0.5],  # below: (-1, e^p x)
            [-1.0, -0.25],
            [-1.0, 0.0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # continuous in its first input at the branch point, and differentiable everywhere
    x = torch.tensor([0.0, edge, 1e-30], dtype=torch.float64, requires_grad=True)
    preprocess(x, p).sum().backward()
    assert torch.isfinite(x.grad).all()


def _quadratic(dim: int = 3, num: int = 2, seed: int = 0) -> Problems:
    g = torch.Generator().manual_seed(seed)
    problems = Quadratics(dim).sample(num, 10, g)
    return Problems({k: v.double() for k, v in problems.params.items()}, problems.loss)


def _double_quadratic(dim: int = 3, num: int = 2, seed: int = 0) -> Problems:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(num, dim, dim, generator=g, dtype=torch.float64)
    y = torch.randn(num, dim, generator=g, dtype=torch.float64)
    theta = torch.randn(num, dim, generator=g, dtype=torch.float64)
    return Problems(
        {"theta": theta},
        lambda p, t: (torch.einsum("bij,bj->bi", w, p["theta"]) - y).pow(2).sum(-1),
    )


def _lstm(hidden: int = 4) -> tuple[CoordinatewiseLSTM, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = CoordinatewiseLSTM(2, hidden, 2).double()
    return net, {k: v.detach().clone() for k, v in net.named_parameters()}


@pytest.mark.parametrize("second_order", [False, True])
def test_lstm_optimizer_meta_gradient_matches_finite_differences(second_order: bool) -> None:
    """Float64: the meta-gradient of Σ_t f(θ_t) over a 3-step unroll. With the second
    derivatives dropped, the finite differences are those of the same objective with each ∇_t
    held at its value along the unperturbed trajectory (what ∂∇_t/∂φ = 0 differentiates)."""
    problems = _double_quadratic()
    net, weights = _lstm()
    steps, scale = 3, 0.1
    phi = {k: v.clone().requires_grad_() for k, v in weights.items()}
    loss, *_ = unroll(
        LSTMOptimizer(net, phi, scale),
        problems.loss,
        problems.params,
        {},
        start=0,
        steps=steps,
        second_order=second_order,
    )
    loss.backward()
    auto = torch.cat([phi[k].grad.flatten() for k in phi])
    assert auto.abs().sum() > 0  # φ is not cut off by an in-place update

    fixed: list[dict[str, torch.Tensor]] = []  # ∇_t along the trajectory at φ
    theta = {k: v.clone().requires_grad_() for k, v in problems.params.items()}
    state: dict[str, torch.Tensor] = {}
    rule = LSTMOptimizer(net, weights, scale)
    for t in range(steps):
        g = torch.autograd.grad(problems.loss(theta, t).sum(), [theta["theta"]])[0]
        fixed.append({"theta": g})
        theta, state = rule(theta, fixed[-1], state, t)
        theta = {k: v.detach().requires_grad_() for k, v in theta.items()}

    def objective(w: dict[str, torch.Tensor]) -> torch.Tensor:
        if second_order:
            return unroll(
                LSTMOptimizer(net, w, scale),
                problems.loss,
                problems.params,
                {},
                start=0,
                steps=steps,
                second_order=True,
            )[0].detach()
        th, st, total = dict(problems.params), {}, torch.zeros((), dtype=torch.float64)
        for t in range(steps):
            th, st = LSTMOptimizer(net, w, scale)(th, fixed[t], st, t)
            total = total + problems.loss(th, t + 1).sum()
        return total

    numeric = finite_difference(objective, weights, eps=1e-6)
    assert rel_error(auto, numeric) < 1e-6


def test_dropping_second_derivatives_changes_the_meta_gradient() -> None:
    problems = _double_quadratic()
    net, weights = _lstm()
    grads = []
    for second_order in (False, True):
        phi = {k: v.clone().requires_grad_() for k, v in weights.items()}
        loss, *_ = unroll(
            LSTMOptimizer(net, phi),
            problems.loss,
            problems.params,
            {},
            start=0,
            steps=3,
            second_order=second_order,
        )
        loss.backward()
        grads.append(torch.cat([phi[k].grad.flatten() for k in phi]))
    assert 1e-6 < rel_error(grads[0], grads[1]) < 1.0


def _tiny_task_batch(seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.randn(2, 6, 4, generator=g), torch.randn(2, 6, 4, generator=g)
    ys = torch.tensor([0, 1, 2] * 2).repeat(2, 1)
    return TaskBatch(xs.double(), ys, xq.double(), ys.clone())


class _Linear(nn.Linear):
    def forward(self, x: torch.Tensor, stats_from: int | None = None) -> torch.Tensor:
        return super().forward(x)


@pytest.mark.parametrize("chunk", [7, 32_768])
def test_meta_learner_set_to_gradient_descent_is_gradient_descent(chunk, monkeypatch) -> None:
    """f = 1 and i = α: the meta-learner's trajectory is SGD's to round-off (Sec. 3.1), with
    the coordinates in one call of the LSTM or in chunks of 7."""
    from learntolearn.methods import learned_optimizer

    monkeypatch.setattr(learned_optimizer, "CHUNK", chunk)
    torch.manual_seed(0)
    cell = MetaLearnerCell().double()
    cell.set_gradient_descent(0.1)
    learner = _Linear(4, 3).double()
    objective = Objective(learner, cross_entropy)
    batch = _tiny_task_batch()
    theta = {k: v.detach()[None].expand(2, *v.shape) for k, v in learner.named_parameters()}
    support = lambda p, _: objective.batched(p, batch.x_support, batch.y_support)  # noqa: E731
    weights = {k: v.detach() for k, v in cell.named_parameters()}
    by_lstm, by_sgd = [], []
    for rule, out in ((MetaLearnerRule(cell, weights), by_lstm), (SGD(0.1), by_sgd)):
        adapt(
            theta,
            support,
            steps=5,
            rule=rule,
            differentiable=False,
            trace=lambda _, p, out=out: out.append(flatten(p)),
        )
    for a, b in zip(by_lstm, by_sgd, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    assert (by_sgd[-1] - by_sgd[0]).abs().max() > 1e-3  # it moved


def test_meta_learner_lstm_meta_gradient_matches_finite_differences() -> None:
    """The Meta-Learner LSTM's meta-gradient (c_0 and the meta-learner, ∇_t and L_t treated
    as inputs) against central differences of the same objective with ∇_t, L_t held fixed."""
    torch.manual_seed(1)
    model = LearnerAndMetaLearner(_Linear(4, 3), MetaLearnerCell(4, 3)).double()
    with torch.no_grad():  # gates away from saturation, so that every weight matters
        model.meta_learner.input_gate.bias.fill_(-1.0)
        model.meta_learner.forget_gate.bias.fill_(1.0)
    method = MetaLearnerLSTM(Objective(model, cross_entropy), inner_steps=2)
    batch = _tiny_task_batch(3)
    params = init_params(model)
    method.loss(params, batch).backward()
    auto = torch.cat([params[k].grad.flatten() for k in params])
    assert auto.abs().sum() > 0

    learner_objective = method.learner
    fixed: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = []
    c0 = {k.removeprefix("learner."): v.detach() for k, v in params.items() if "learner." in k[:8]}
    meta = {
        k.removeprefix("meta_learner."): v.detach()
        for k, v in params.items()
        if k.startswith("meta_")
    }
    rule = MetaLearnerRule(model.meta_learner, meta)
    theta = {k: v[None].expand(2, *v.shape) for k, v in c0.items()}
    state: dict[str, torch.Tensor] = {}
    for t in range(2):
        theta = {k: v.detach().requires_grad_() for k, v in theta.items()}
        loss = learner_objective.batched(theta, batch.x_support, batch.y_support)
        grads = dict(zip(theta, torch.autograd.grad(loss.sum(), list(theta.values())), strict=True))
        fixed.append((grads, loss.detach()))
        theta, state = rule(theta, grads, {**state, LOSS: loss.detach()}, t)

    def objective(p: dict[str, torch.Tensor]) -> torch.Tensor:
        c, m = {}, {}
        for k, v in p.items():
            (c if k.startswith("learner.") else m)[k.split(".", 1)[1]] = v
        r = MetaLearnerRule(model.meta_learner, m)
        th, st = {k: v[None].expand(2, *v.shape) for k, v in c.items()}, {}
        for t, (g, loss) in enumerate(fixed):
            th, st = r(th, g, {**st, LOSS: loss}, t)
        q = learner_objective.batched(th, batch.x_query, batch.y_query, batch.x_support)
        return q.mean()

    numeric = finite_difference(objective, {k: v.detach() for k, v in params.items()}, eps=1e-6)
    assert rel_error(auto, numeric) < 1e-6


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (NAG(0.05, 0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
        (RMSprop(0.01), lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-8)),
        (Adam(0.01, beta1=0.9), lambda p: torch.optim.Adam(p, lr=0.01)),
    ],
)
def test_baselines_follow_torch_optim(ours, theirs) -> None:
    problems = _double_quadratic()
    curve = optimizer_runs.trajectories(ours, problems, 20)
    theta = problems.params["theta"].clone().requires_grad_()
    opt, reference = theirs([theta]), []
    for t in range(21):
        loss = problems.loss({"theta": theta}, t)
        reference.append(loss.detach())
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    torch.testing.assert_close(curve, torch.stack(reference), rtol=1e-7, atol=1e-9)


def test_a_nan_optimizee_is_a_clear_error() -> None:
    net, weights = _lstm()
    problems = Problems(
        {"theta": torch.ones(1, 2, dtype=torch.float64)},
        lambda p, t: (p["theta"] * torch.tensor(float("nan"))).sum(-1),
    )
    with pytest.raises(NonFiniteLossError, match="not finite at step 0"):
        unroll(LSTMOptimizer(net, weights), problems.loss, problems.params, {}, start=0, steps=3)


def test_a_stored_optimizer_of_another_shape_is_a_clear_error(tmp_path) -> None:
    from learntolearn.io import save_tensors

    cfg = optimizer_experiment("l2l/quadratic", "smoke")
    other = CoordinatewiseLSTM(2, 7, 1)
    save_tensors(tmp_path / "o.pt", {k: v.detach() for k, v in other.named_parameters()})
    with pytest.raises(ValueError, match="2-layer LSTM with 20 units needs"):
        optimizer_runs.load_optimizer(tmp_path / "o.pt", cfg)


def test_smoke_run_resumes_to_the_same_optimizer(tmp_path, monkeypatch) -> None:
    """A run interrupted after its first horizon resumes to φ bit for bit, and its result
    has every baseline tuned on the grid and the LSTM's curve."""
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "a"))
    cfg = replace(optimizer_experiment("l2l/quadratic", "smoke"), iterations=3)
    straight = run(cfg, device="cpu", progress=False)
    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "b"))
    calls = iter([0.0, 0.0, math.inf])  # the deadline passes before the second horizon
    monkeypatch.setattr(optimizer_runs.time, "monotonic", lambda: next(calls, math.inf))
    with pytest.raises(InterruptedError):
        run(cfg, device="cpu", progress=False, deadline=1.0)
    monkeypatch.setattr(optimizer_runs.time, "monotonic", time.monotonic)
    resumed = run(cfg, device="cpu", progress=False)
    assert resumed.metrics["optimizer_sha256"] == straight.metrics["optimizer_sha256"]
    found = resumed.metrics["eval"]["quadratic"]
    for b in ("sgd", "nag", "rmsprop", "adam"):
        assert found[b]["lr"] in cfg.lr_grid and len(found[b]["tuning"]) == len(cfg.lr_grid)
    assert len(found["lstm"]["mean"]) == cfg.settings["quadratic"].steps + 1 == 21
    assert resumed.rule().net.hidden == 20


def test_each_coordinate_keeps_its_own_state() -> None:
    """Coordinatewise bookkeeping: two problems optimised together follow exactly the
    trajectories each follows alone, and the state has one row per coordinate."""
    net, weights = _lstm()
    g = torch.Generator().manual_seed(5)
    w, y, theta = (
        torch.randn(*s, generator=g, dtype=torch.float64) for s in ((2, 3, 3), (2, 3), (2, 3))
    )

    def problems(rows: slice) -> Problems:
        return Problems(
            {"theta": theta[rows]},
            lambda p, t: (torch.einsum("bij,bj->bi", w[rows], p["theta"]) - y[rows]).pow(2).sum(-1),
        )

    rule = LSTMOptimizer(net, weights)
    together = optimizer_runs.trajectories(rule, problems(slice(0, 2)), 6)
    for i in range(2):
        alone = optimizer_runs.trajectories(rule, problems(slice(i, i + 1)), 6)
        torch.testing.assert_close(alone[:, 0], together[:, i], rtol=0, atol=0)
    _, state = rule({"theta": theta}, {"theta": torch.ones_like(theta)}, {}, 0)
    assert all(v.shape == (6, 4) for v in state.values())


def test_chunked_coordinates_give_the_same_updates(monkeypatch) -> None:
    from learntolearn.methods import learned_optimizer

    net, weights = _lstm()
    rule = LSTMOptimizer(net, weights)
    g = torch.Generator().manual_seed(3)
    theta = {"a": torch.randn(7, 5, generator=g, dtype=torch.float64)}
    grads = {"a": torch.randn(7, 5, generator=g, dtype=torch.float64)}
    whole, state = rule(theta, grads, {}, 0)
    monkeypatch.setattr(learned_optimizer, "CHUNK", 4)  # 35 coordinates in 9 chunks
    parts, chunked = rule(theta, grads, {}, 0)
    torch.testing.assert_close(parts["a"], whole["a"], rtol=1e-14, atol=1e-14)
    assert all(torch.allclose(chunked[k], state[k], rtol=1e-14, atol=1e-14) for k in state)
