"""Sinusoid tasks, the task data model, and evaluation statistics."""

from __future__ import annotations

import math

import pytest
import torch

from learntolearn.analysis.statistics import mean_ci95, score_curve, summarize_curve
from learntolearn.data.sinusoid import SinusoidTasks, fixed_tasks, sinusoid, with_task_parameters
from learntolearn.methods.finetuning import finetune_predictions
from learntolearn.methods.inner_loop import SGD
from learntolearn.models.networks import MLP
from learntolearn.objective import Objective, init_params, mse
from learntolearn.reporting.tables import Table, fmt_step
from learntolearn.tasks import TaskBatch


def test_task_distribution_matches_the_paper():
    b = SinusoidTasks(10, 7).sample(4000, torch.Generator().manual_seed(0))
    assert b.x_support.shape == (4000, 10, 1) and b.x_query.shape == (4000, 7, 1)
    a, p = b.info["amplitude"], b.info["phase"]
    assert a.min() >= 0.1 and a.max() <= 5.0 and p.min() >= 0 and p.max() <= math.pi
    assert b.x_support.min() >= -5 and b.x_support.max() <= 5
    assert torch.allclose(b.y_query, a.view(-1, 1, 1) * torch.sin(b.x_query - p.view(-1, 1, 1)))
    assert abs(a.mean().item() - 2.55) < 0.1  # U[0.1, 5] has mean 2.55


def test_sampling_is_reproducible_and_test_tasks_are_fixed():
    s = SinusoidTasks(5, 5)
    a = s.sample(8, torch.Generator().manual_seed(3))
    b = s.sample(8, torch.Generator().manual_seed(3))
    assert torch.equal(a.x_support, b.x_support)
    t5, t10 = fixed_tasks(5), fixed_tasks(10)
    assert t5.num_tasks == 600 and torch.equal(t5.info["amplitude"], t10.info["amplitude"])
    assert torch.equal(t5.x_query, t10.x_query)  # same tasks, same query points for every K
    assert torch.equal(fixed_tasks(5).x_support, t5.x_support)
    half = fixed_tasks(10, half=True)
    assert half.x_support.max() <= 0 and torch.equal(half.info["phase"], t10.info["phase"])


def test_task_batch_validates_shapes():
    x = torch.zeros(3, 5, 1)
    with pytest.raises(ValueError, match="first dimension"):
        TaskBatch(x, x, torch.zeros(2, 5, 1), torch.zeros(2, 5, 1))
    with pytest.raises(ValueError, match="support set has 5 inputs but 4 targets"):
        TaskBatch(x, torch.zeros(3, 4, 1), x, x)
    b = TaskBatch(x, x, x, x, info={"a": torch.arange(3)})
    assert b[1].num_tasks == 1 and b[1].info["a"].tolist() == [1]
    assert b.to("cpu", torch.float64).x_query.dtype == torch.float64
    assert b.to("cpu", torch.float64).info["a"].dtype == torch.int64


def test_oracle_inputs_carry_the_task():
    b = with_task_parameters(fixed_tasks(5, num_tasks=4))
    assert b.x_support.shape == (4, 5, 3)
    assert torch.equal(b.x_query[:, :, 1], b.info["amplitude"].view(-1, 1).expand(-1, 100))


def test_mean_ci95():
    v = torch.tensor([1.0, 2.0, 3.0, 4.0])
    m, h = mean_ci95(v)
    assert m == 2.5 and h == pytest.approx(1.959964 * v.std().item() / 2, rel=1e-6)
    with pytest.raises(ValueError):
        mean_ci95(torch.tensor([1.0]))


def finetune_curve(obj, params, batch, *, steps, lr, score=mse):
    """Query score of each task after 0..steps SGD steps: ``[steps+1, B]``."""
    preds = finetune_predictions(obj, params, batch, steps=steps, rule=SGD(lr))
    return score_curve(score, preds["transductive"], batch.y_query)


def test_finetune_curve_decreases_support_loss_and_matches_a_manual_step():
    torch.manual_seed(0)
    model = MLP((1, 40, 40, 1), init_std=0.3)
    obj, params = Objective(model, mse), init_params(model)
    batch = fixed_tasks(10, num_tasks=16)
    curve = finetune_curve(obj, params, batch, steps=3, lr=0.01)
    assert curve.shape == (4, 16)
    # one manual SGD step on the first task gives the curve's second entry
    x, y = batch.x_support[0], batch.y_support[0]
    g = torch.autograd.grad(obj.single(params, x, y), list(params.values()))
    stepped = {k: v - 0.01 * gi for (k, v), gi in zip(params.items(), g, strict=True)}
    manual = obj.single(stepped, batch.x_query[0], batch.y_query[0])
    assert torch.allclose(curve[1, 0], manual.detach(), rtol=1e-5)
    # the oracle of the amplitude: a constant prediction of 0 has MSE E[A^2]/2 ≈ 4.2
    zero = {k: torch.zeros_like(v) for k, v in params.items()}
    zero_mse = finetune_curve(obj, zero, batch, steps=0, lr=0.01).mean().item()
    assert zero_mse == pytest.approx((batch.y_query**2).mean().item(), rel=1e-6)
    assert sinusoid(torch.zeros(1, 1, 1), torch.ones(1), torch.zeros(1)).item() == 0


def test_summary_counts_diverged_tasks_and_reports_them():
    curve = torch.tensor([[1.0, 2.0, 1.0, 4.0], [0.5, 25.0, float("nan"), 1.0]])
    s = summarize_curve(curve)
    assert s["diverged"] == [0, 2] and s["median"][0] == 1.5
    acc = summarize_curve(torch.tensor([[0.2, 0.4], [1.0, 0.8]]), "accuracy")
    assert "diverged" not in acc and fmt_step(acc, 1) == "90.0 ± 19.6"
    assert fmt_step(s, 0) == f"{2.0:.3f} ± {mean_ci95(curve[0])[1]:.3f}"
    assert fmt_step(s, 1) == f"median {s['median'][1]:.3f} (2 diverged)"


def test_table_text_and_markdown():
    t = Table(["K", "MSE"], [[5, "0.1 ± 0.2"], [10, "a|b"]], caption="cap")
    assert str(t).splitlines()[0] == "cap" and "10  a|b" in str(t)
    assert "| 10 | a\\|b |" in t._repr_markdown_()
    # On the page a captioned table is a numbered {table} directive with its label.
    md = Table(["a"], [[1]], caption="two\nlines", name="tbl-01-x")._repr_markdown_()
    assert md.splitlines()[:2] == ["::::{table} two lines", ":name: tbl-01-x"]
    assert md.endswith("::::") and "{table}" not in Table(["a"], [[1]])._repr_markdown_()
    with pytest.raises(ValueError, match="rows"):
        Table(["a"], [[1, 2]])
    with pytest.raises(ValueError, match="no caption"):
        Table(["a"], [[1]], name="tbl-01-x")
    with pytest.raises(ValueError, match="not a label"):
        Table(["a"], [[1]], caption="c", name="Table 1")


def test_both_modes_share_one_trajectory_and_chunking_changes_nothing():
    torch.manual_seed(0)
    model = MLP((1, 40, 40, 1), init_std=0.3)
    obj, params = Objective(model, mse), init_params(model)
    batch = fixed_tasks(5, num_tasks=10)
    modes = ("transductive", "non-transductive")
    whole = finetune_predictions(obj, params, batch, steps=3, rule=SGD(0.01), modes=modes)
    parts = [
        finetune_predictions(obj, params, batch[i : i + 3], steps=3, rule=SGD(0.01), modes=modes)
        for i in range(0, 10, 3)
    ]
    for m in modes:
        assert whole[m].shape == (4, 10, 100, 1)
        joined = torch.cat([p[m] for p in parts], 1)
        assert torch.allclose(whole[m], joined, rtol=1e-6)
    # an MLP has no batch norm: both modes predict the same
    assert torch.equal(whole["transductive"], whole["non-transductive"])
