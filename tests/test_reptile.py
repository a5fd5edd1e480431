"""Reptile against a serial reference written from the paper's Algorithm 1, its joint-training
limit (k = 1), its class-balanced minibatches, and the annealed outer step."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from learntolearn.data.sinusoid import SinusoidTasks
from learntolearn.experiments.training import RunSettings
from learntolearn.fewshot.training import OuterLoop, train
from learntolearn.methods.inner_loop import SGD, Adam
from learntolearn.methods.pretraining import JointTraining
from learntolearn.methods.reptile import Reptile, pooled_examples
from learntolearn.models.networks import MLP, ConvNet
from learntolearn.objective import Objective, cross_entropy, init_params, mse
from learntolearn.tasks import TaskBatch


def serial_reptile_direction(objective, params, batch, *, adam, lr, steps, inner_batch):
    """Φ − mean_i W_i with W_i from a plain per-task loop (Nichol et al. 2018, Alg. 1)."""
    finals = []
    for i in range(batch.num_tasks):
        x, y = (t[0] for t in pooled_examples(batch[i]))
        w = {k: v.detach().clone() for k, v in params.items()}
        v2 = {k: torch.zeros_like(t) for k, t in w.items()}
        for s in range(steps):
            idx = [(s * inner_batch + j) % x.shape[0] for j in range(inner_batch)]
            w = {k: t.requires_grad_() for k, t in w.items()}
            grads = torch.autograd.grad(objective.single(w, x[idx], y[idx]), list(w.values()))
            with torch.no_grad():
                for (k, t), g in zip(list(w.items()), grads, strict=True):
                    if adam:
                        v2[k] = 0.999 * v2[k] + 0.001 * g * g
                        step = g / ((v2[k] / (1 - 0.999 ** (s + 1))).sqrt() + 1e-8)
                    else:
                        step = g
                    w[k] = t - lr * step
        finals.append(w)
    return {k: params[k].detach() - torch.stack([w[k] for w in finals]).mean(0) for k in params}


def classification_batch(num_tasks=3, n_way=3, shots=2, queries=2, size=8):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n_way)

    def part(k):
        x = torch.randn(num_tasks, n_way * k, 1, size, size, generator=g, dtype=torch.float64)
        return x, labels.repeat_interleave(k).repeat(num_tasks, 1)

    return TaskBatch(*part(shots), *part(queries))


@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adam"])
def test_batched_reptile_matches_the_serial_algorithm(adam):
    torch.manual_seed(0)
    model = ConvNet(3, hidden=4, image_size=8).double()
    objective = Objective(model, cross_entropy)
    params = init_params(model)
    batch = classification_batch()
    lr = 1e-3 if adam else 0.1
    rule = Adam(lr) if adam else SGD(lr)
    reptile = Reptile(objective, rule, inner_steps=5, inner_batch=3)
    got = reptile.direction(params, batch)
    want = serial_reptile_direction(
        objective, params, batch, adam=adam, lr=lr, steps=5, inner_batch=3
    )
    # Adam divides by √v: the conv biases, whose gradient batch norm makes exactly zero, move by
    # ±lr on rounding noise alone, differently in the two orders of summation (up to ~1e-9).
    for k in params:
        torch.testing.assert_close(got[k], want[k], rtol=1e-10, atol=1e-8 if adam else 1e-14)
    # the surrogate's gradient is the direction, so SGD with step ε on it is Φ + ε(W̄ − Φ)
    leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
    grads = torch.autograd.grad(reptile.loss(leaf, batch), list(leaf.values()))
    for k, g in zip(leaf, grads, strict=True):
        torch.testing.assert_close(g, got[k], rtol=1e-12, atol=1e-14)


def test_minibatches_are_class_balanced_and_keep_every_example():
    batch = classification_batch(num_tasks=2, n_way=3, shots=2, queries=2)
    x, y = pooled_examples(batch)
    assert x.shape == (2, 12, 1, 8, 8)
    for i in range(2):
        assert y[i].tolist() == [0, 1, 2] * 4  # any 3 (or 6) consecutive: every class
        pooled = torch.cat([batch.x_support[i], batch.x_query[i]])
        assert sorted(x[i].sum((1, 2, 3)).tolist()) == sorted(pooled.sum((1, 2, 3)).tolist())
    # regression targets keep their order
    s = SinusoidTasks(3, 2).sample(2, torch.Generator().manual_seed(0))
    xs, _ = pooled_examples(s)
    assert torch.equal(xs, torch.cat([s.x_support, s.x_query], 1))


def test_one_inner_step_is_joint_training():
    """k = 1 on all of a task's points: Φ − W̄ = α ∇ (joint-training loss) (Nichol et al. Sec. 5)."""
    torch.manual_seed(0)
    model = MLP((1, 8, 8, 1)).double()
    objective = Objective(model, mse)
    params = init_params(model)
    batch = SinusoidTasks(6, 4).sample(5, torch.Generator().manual_seed(1)).to("cpu", torch.float64)
    alpha = 0.02
    direction = Reptile(objective, SGD(alpha), inner_steps=1, inner_batch=10).direction(
        params, batch
    )
    joint = torch.autograd.grad(JointTraining(objective).loss(params, batch), list(params.values()))
    for k, g in zip(params, joint, strict=True):
        torch.testing.assert_close(direction[k], alpha * g, rtol=1e-12, atol=1e-15)


class _Constant:
    """loss = Σ params: every gradient is 1, so SGD moves each weight by exactly −ε_t."""

    def loss(self, params, batch):
        return sum(v.sum() for v in params.values())


def test_outer_step_size_is_annealed_linearly(tmp_path):
    params = {"w": torch.zeros(2)}
    sample = lambda g: None  # noqa: E731
    outer = OuterLoop("sgd", lr=1.0, lr_final=0.0)
    run = RunSettings(key="k", iterations=4, seed=0, device=torch.device("cpu"), progress=False)
    done = train(_Constant(), params, sample, outer, run)
    torch.testing.assert_close(done.params["w"].detach(), torch.full((2,), -2.5))  # 1+.75+.5+.25
    ck = tmp_path / "ck.pt"
    half = train(
        _Constant(),
        params,
        sample,
        outer,
        replace(run, checkpoint=ck, checkpoint_every=1, stop_after=2),
    )
    assert half.iteration == 2
    resumed = train(
        _Constant(), params, sample, outer, replace(run, checkpoint=ck, checkpoint_every=1)
    )
    assert torch.equal(resumed.params["w"], done.params["w"])
