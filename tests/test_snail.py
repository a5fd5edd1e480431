"""SNAIL (Mishra et al. 2018): the building blocks against their equations, causality, finite
differences in float64, and the method end to end on a tiny fake task batch.

Episodes are built here rather than borrowed from ``test_metric.tiny_batch``: SNAIL needs the
batch's ``info["classes"]``, 28x28 images for conv4-64, and varying N, K and Q.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch.func import functional_call

from learntolearn.methods.black_box import presentation_order
from learntolearn.methods.metric import embed
from learntolearn.methods.snail import (
    AttentionBlock,
    DenseBlock,
    Snail,
    SNAILCore,
    TCBlock,
    dense_blocks,
)
from learntolearn.models.metric_networks import MetricNet, conv4
from learntolearn.objective import Objective, cross_entropy, init_params
from learntolearn.tasks import TaskBatch

N_WAY, K_SHOT, Q_QUERY, TASKS = 3, 2, 3, 2
MODES = ("transductive", "non-transductive")


def episode(
    n: int = N_WAY, k: int = K_SHOT, q: int = Q_QUERY, tasks: int = TASKS, seed: int = 0
) -> TaskBatch:
    """``tasks`` fake n-way k-shot tasks of 28x28 images, support labels in class-major order."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n)
    return TaskBatch(
        x_support=torch.rand(tasks, n * k, 1, 28, 28, generator=g),
        y_support=labels.repeat_interleave(k).repeat(tasks, 1),
        x_query=torch.rand(tasks, q, 1, 28, 28, generator=g),
        y_query=torch.randint(n, (tasks, q), generator=g),
        info={"classes": torch.stack([torch.randperm(100, generator=g)[:n] for _ in range(tasks)])},
    )


def snail(
    n: int = N_WAY, k: int = K_SHOT, transductive: bool = False
) -> tuple[Snail, dict[str, torch.Tensor]]:
    """SNAIL over conv4-64 for n-way k-shot episodes, and fresh parameters."""
    torch.manual_seed(0)
    model = MetricNet(conv4(), SNAILCore(64 + n, n, n * k + 1))
    method = Snail(Objective(model, cross_entropy, transductive=transductive))
    return method, init_params(model)


def tiny_core(inputs: int = 3, n_way: int = 2, length: int = 4) -> SNAILCore:
    torch.manual_seed(0)
    return SNAILCore(inputs, n_way, length).double()


def changed_steps(f, x: torch.Tensor, j: int) -> torch.Tensor:
    """``[T]``: the largest change of ``f``'s output at each step when input step ``j`` moves."""
    y = torch.randn_like(x[:, j])
    moved = x.clone()
    moved[:, j] = y
    return (f(moved) - f(x)).abs().amax(dim=(0, 2))


# 1. ⌈log₂ T⌉ dense blocks, not the ⌈ln T⌉ of a public implementation
@pytest.mark.parametrize(("length", "blocks"), [(2, 1), (6, 3), (21, 5), (26, 5), (101, 7)])
def test_tc_block_has_log2_many_dense_blocks(length, blocks):
    block = TCBlock(3, length=length, filters=2)
    assert block.blocks == len(block.dense) == dense_blocks(length) == blocks
    assert [b.dilation for b in block.dense] == [2**i for i in range(blocks)]
    assert block(torch.randn(1, length, 3)).shape == (1, length, 3 + 2 * blocks)
    assert 2**blocks >= length  # the last step sees the whole sequence


def test_log2_count_differs_from_the_natural_log_count():
    lengths = (2, 6, 26, 21, 101)
    natural = [math.ceil(math.log(t)) for t in lengths]
    assert [TCBlock(1, t, 1).blocks for t in lengths] != natural
    assert TCBlock(1, 26, 1).blocks == 5 != math.ceil(math.log(26))


# 2. causality: output t depends on input steps 0..t only
def test_snail_core_is_causal():
    torch.manual_seed(1)
    core, length = tiny_core(length=6), 6
    x = torch.randn(2, length, 3, dtype=torch.float64)
    with torch.no_grad():
        for j in range(length):
            change = changed_steps(core.read, x, j)
            assert (change[:j] <= 1e-12).all(), (j, change)
            assert (change[j:] > 1e-8).all(), (j, change)


def test_dense_block_is_causal_and_dilated():
    torch.manual_seed(2)
    block = DenseBlock(3, dilation=2, filters=4).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    with torch.no_grad():
        for j in range(7):
            change = changed_steps(lambda v: block(v)[..., 3:], x, j)
            # kernel 2, dilation 2: output t reads steps t − 2 and t, nothing else
            reads = {j, j + 2} & set(range(7))
            for t in range(7):
                assert (change[t] > 1e-8) == (t in reads), (j, t, change)


def test_dense_block_is_the_gated_causal_convolution():
    torch.manual_seed(3)
    block = DenseBlock(3, dilation=2, filters=4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)

    def conv(c: torch.nn.Conv1d, t: int) -> torch.Tensor:
        past = x[:, t - 2] if t >= 2 else torch.zeros_like(x[:, t])
        return past @ c.weight[:, :, 0].T + x[:, t] @ c.weight[:, :, 1].T + c.bias

    out = block(x)
    assert out.shape == (2, 5, 3 + 4)
    torch.testing.assert_close(out[..., :3], x)
    for t in range(5):
        expected = torch.tanh(conv(block.f, t)) * torch.sigmoid(conv(block.g, t))
        torch.testing.assert_close(out[:, t, 3:], expected)


def test_attention_block_is_causal_and_matches_its_equations():
    torch.manual_seed(4)
    block = AttentionBlock(3, key_size=5, value_size=4).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    with torch.no_grad():
        for j in range(6):
            change = changed_steps(block, x, j)
            assert (change[:j] <= 1e-12).all()
            assert (change[j:] > 1e-8).all()
        out = block(x)
        torch.testing.assert_close(out[..., :3], x)
        for t in range(6):
            past = x[:, : t + 1]
            logits = torch.einsum("bk,bsk->bs", block.queries(x[:, t]), block.keys(past))
            p = (logits / math.sqrt(5)).softmax(-1)
            torch.testing.assert_close(
                out[:, t, 3:], torch.einsum("bs,bsv->bv", p, block.values(past))
            )


# 3. the attention probabilities of the figure
def test_attention_probabilities_are_causal_distributions():
    torch.manual_seed(5)
    core = tiny_core(length=6)
    steps = torch.randn(2, 6, 3, dtype=torch.float64)
    probs = core.attention(steps)
    assert len(probs) == 3
    for p in probs:
        assert p.shape == (2, 6, 6)
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(2, 6, dtype=torch.float64))
        assert (p.triu(1) == 0).all()
        visible = torch.ones(6, 6, dtype=torch.bool).tril()
        assert (p[:, visible] > 0).all()  # softmax: every visible step gets some weight
    # the block's probabilities are the ones its forward pass reads with
    first = core.blocks[0]
    torch.testing.assert_close(first(steps)[..., 3:], first.weights(steps) @ first.values(steps))


# 4. finite differences in float64
def test_snail_core_gradient_with_respect_to_inputs():
    core = tiny_core()
    steps = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(core.read, (steps,))
    support = torch.randn(1, 3, 3, dtype=torch.float64, requires_grad=True)
    queries = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(core, (support, queries))


@pytest.mark.parametrize(
    "name", ["blocks.0.queries.weight", "blocks.1.dense.1.g.bias", "blocks.4.values.bias"]
)
def test_snail_core_gradient_with_respect_to_parameters(name):
    core = tiny_core()
    params = {k: v.detach() for k, v in core.named_parameters()}
    steps = torch.randn(2, 4, 3, dtype=torch.float64)
    theta = params[name].clone().requires_grad_()

    def read(p: torch.Tensor) -> torch.Tensor:
        return functional_call(core, {**params, name: p}, (steps,))

    assert torch.autograd.gradcheck(read, (theta,))


# 5. the method end to end
def test_loss_is_a_finite_scalar_with_gradients():
    method, params = snail()
    assert method.label_delay == 0
    loss = method.loss(params, episode())
    assert loss.shape == () and torch.isfinite(loss)
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    assert all(torch.isfinite(g).all() for g in grads.values())
    for part in ("embedding.", "comparator.blocks.0.", "comparator.blocks.3.", "comparator.out."):
        assert any(g.abs().sum() > 0 for k, g in grads.items() if k.startswith(part)), part
    with pytest.raises(ValueError, match="label_delay = 1"):
        method.online(params, episode())


def test_predictions_have_one_pass_per_mode():
    method, params = snail()
    batch = episode()
    out = method.predictions(params, batch, steps=0, lr=0.1, modes=MODES)
    assert set(out) == set(MODES)
    for scores in out.values():
        assert scores.shape == (1, TASKS, Q_QUERY, N_WAY)
        assert torch.isfinite(scores).all()


def test_a_query_does_not_see_the_other_queries():
    method, params = snail()
    batch = episode()
    moved = replace(batch, x_query=batch.x_query.clone())
    moved.x_query[:, 1] = torch.rand_like(moved.x_query[:, 1])
    before = method.predictions(params, batch, steps=0, lr=0.1, modes=MODES)
    after = method.predictions(params, moved, steps=0, lr=0.1, modes=MODES)
    b, a = before["non-transductive"][0], after["non-transductive"][0]
    torch.testing.assert_close(a[:, [0, 2]], b[:, [0, 2]])
    assert not torch.allclose(a[:, 1], b[:, 1])
    # the check can fail: transductive batch norm lets the queries' statistics leak
    t_before, t_after = before["transductive"][0], after["transductive"][0]
    assert not torch.allclose(t_after[:, 0], t_before[:, 0])


def test_support_steps_show_their_own_label_and_queries_a_zero_label():
    method, params = snail()
    batch = episode()
    support, query = embed(method.objective, params, batch, method.mode)
    steps = method.sequence(batch, support, query)
    order = presentation_order(batch.x_support)
    assert (order.sort(1).values == torch.arange(N_WAY * K_SHOT)).all()
    assert steps.support.shape == (TASKS, N_WAY * K_SHOT, 64 + N_WAY)
    assert steps.queries.shape == (TASKS, Q_QUERY, 64 + N_WAY)
    torch.testing.assert_close(steps.labels, batch.y_support.gather(1, order))
    shown = torch.nn.functional.one_hot(steps.labels, N_WAY).float()
    assert torch.equal(steps.support[..., 64:], shown)
    assert torch.equal(
        steps.support[..., :64], support.gather(1, order[..., None].expand_as(support))
    )
    assert (steps.queries[..., 64:] == 0).all()
    assert torch.equal(steps.queries[..., :64], query)


def test_episodes_the_network_cannot_read_are_refused():
    method, params = snail()
    too_long = episode(k=K_SHOT + 1)
    batch = episode()
    big_label = replace(batch, y_query=batch.y_query.clone())
    big_label.y_query[0, 0] = N_WAY
    missing = replace(batch, y_support=batch.y_support.clone())
    missing.y_support[1, :K_SHOT] = 1  # task 1 never shows class 0
    cases = [
        (too_long, "10 steps .* built for 7"),
        (big_label, "labels must lie in 0..2"),
        (missing, "task 1's support sequence shows no example of class 0"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            method.loss(params, bad)
        with pytest.raises(ValueError, match=message):
            method.predictions(params, bad, steps=0, lr=0.1, modes=MODES)
